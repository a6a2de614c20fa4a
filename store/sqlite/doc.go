// Package sqlite is the embedded default store.Backend: tenant records in
// SQLite files under one data directory, on the pure-Go modernc.org/sqlite
// driver.
//
// It hosts two isolation modes:
//
//   - store.Pooled: every tenant shares <dir>/pooled.db. Each statement is
//     generated here with the tenant predicate bound as a parameter, and the
//     tenant is fixed when the transaction begins; tenants never get SQL
//     (BeginSQL refuses them), so the pooled file holds no team tables and
//     is not a migration unit (Apply refuses it with ErrNoPooledUnit).
//   - store.Database: one file per tenant, <dir>/tenants/<StorageName>.db,
//     created through an os.Root on <dir>/tenants. The rows keep tenant_id and
//     every statement keeps its tenant predicate, as defence in depth. At most
//     Options.MaxOpenDatabases files stay open; idle ones are closed least
//     recently used first. A team's own tables live in the tenant's file:
//     Tx, ReadTx and With hand out a *sql.Tx on it, and Apply (a
//     migrate.Applier) and Options.Migrations migrate them.
//
// A team's own SQL runs guarded (see BeginSQL and ErrRefused): an SQLite
// authorizer on every connection confines it to the tenant's own file and
// keeps it off Bulkhead's tables and settings, whatever the SQL says.
//
//	err := sqlite.Tx(ctx, router, func(tx *sql.Tx) error {
//		_, err := tx.ExecContext(ctx, `INSERT INTO notes (body) VALUES (?)`, body)
//		return err
//	})
//
// A team's tests get this backend from package tenanttest: a Router on a
// data directory under t.TempDir(), tenants in both modes, the team's
// migrations applied to the database-mode ones.
//
// store.Schema needs PostgreSQL and is refused with an error wrapping
// store.ErrIsolationUnsupported.
//
// One process owns a data directory: Open locks <dir>/bulkhead.lock
// exclusively until Close (ErrLocked otherwise).
//
// Every file runs in WAL mode with synchronous=FULL, a busy timeout and
// foreign keys on. Each file has one writer — a pool of one connection that
// begins with BEGIN IMMEDIATE — and a separate pool of query-only readers
// that serve read-only transactions concurrently with the writer.
// Connections open lazily and parse each generated statement once, then
// keep it prepared.
//
// Backends move rows; a store.Router does the rest:
//
//	be, err := sqlite.Open(dataDir, sqlite.Options{})
//	if err != nil { ... }
//	router, err := store.NewRouter(store.Config{
//		Placements: catalog,
//		Backends:   map[string]store.Backend{"local": be},
//		CursorKey:  key,
//	})
package sqlite
