// Package store is the only way Bulkhead code, and a team's code, reaches
// tenant data.
//
// # Transactions for the tenant in the context
//
// A Router opens transactions, and only for the tenant the context carries
// (tenant.WithID): Begin, Run, Tx and ReadTx fail with tenant.ErrMissing
// when the context has none — no tenant never means "all tenants" — and a
// Tx refuses a context that names another tenant (ErrTenantMismatch).
// Every statement a Tx runs is scoped to its tenant by the backend: a
// bound tenant predicate, a tenant schema, a tenant database or file.
//
//	ctx = tenant.WithID(ctx, tenant.MustParse("acme")) // ingress does this
//	err := router.Tx(ctx, func(tx *store.Tx) error {
//		rec, created, err := tx.Put(ctx, "invoices", "inv-1", data, store.IfMatch{})
//		...
//	})
//
// The Router asks a Placements source (the catalog) where the tenant
// lives — its isolation Mode and shard — and opens the transaction on that
// shard's Backend. Provision and Drop are control-plane operations and
// take the tenant explicitly.
//
// # Records
//
// Record semantics live here, once, for every backend: JSON objects in
// named collections, versions and If-Match preconditions (IfMatch),
// server-made opaque ids (Tx.Create), pages in id order with cursors
// authenticated and bound to tenant, collection and filter (Tx.List,
// Config.CursorKey), equality filters on top-level fields (ParseFilter),
// and per-tenant quotas checked inside the write transaction
// (Config.Quotas, ErrQuotaExceeded). Another tenant's record and a missing
// one give the same ErrNotFound.
//
// # Your own SQL
//
// A backend that can confine a team's own SQL to the tenant offers it as a
// capability (SQLBackend). Open the transaction with TxOptions{SQL: true}
// and take the engine's handle with the engine package's helpers —
// postgres.Tx, ReadTx and With (a pgx.Tx), sqlite.Tx, ReadTx and With (a
// *sql.Tx on a database-mode tenant's own file) — so that records and the
// team's rows commit together. A mode the engine cannot confine gets
// ErrIsolationUnsupported.
//
// # Backends
//
// Backend and BackendTx are the implementer's contract, as
// database/sql/driver is for database/sql: backends move rows, the Router
// does the rest. store/sqlite and store/postgres implement it;
// store/storetest is the conformance and isolation suite every backend and
// mode must pass. For a team's own tests, package tenanttest gives a
// temporary Router with tenants in each mode.
package store
