// Package postgres is the PostgreSQL store.Backend: one Backend per shard (a
// PostgreSQL server, reached through its main database), on
// github.com/jackc/pgx/v5's pgxpool. It hosts all three isolation modes,
// mixed per tenant:
//
//   - store.Pooled: tenants share the tables of schema "bulkhead" in the
//     shard database.
//   - store.Schema: one schema per tenant, named tenant.StorageName(), created
//     and migrated at Provision.
//   - store.Database: one database per tenant on the shard, named
//     Options.DatabasePrefix + tenant.StorageName(), with schema "bulkhead";
//     a pool per tenant database, opened lazily, at most
//     Options.MaxOpenDatabases open (idle ones closed least recently used
//     first).
//
// # The tenant the database enforces
//
// Every table the serving role may use has row-level security enabled and
// forced, with a restrictive policy that admits only the rows of the
// transaction's tenant (tables without tenant_id in schema and database
// units: only transactions of the unit's tenant). The transaction's tenant
// lives in a setting whose name is a per-shard secret that SQL run by the
// serving role never sees (see seal.go): whatever SQL runs inside a tenant
// transaction — a team's, or SQL injected into a team's handler — can
// change bulkhead.tenant, search_path or any setting it can name, and still
// reads and writes only the tenant Bulkhead began the transaction for. It
// cannot reach another tenant's schema or the pooled tables by qualified
// names, create objects, run DO blocks, PREPARE a statement in place of
// Bulkhead's, or end the transaction (ErrStatementRefused). Statements bind
// the tenant too, and the layout keeps tenant_id first in every key: defence
// in depth.
//
// A tenant transaction costs the round trips of its statements: the
// setting, search_path and BEGIN travel in the batch of the first
// statement, and a read-only transaction sends no BEGIN at all (each
// statement runs in its own implicit transaction), so a point read is one
// round trip.
//
// Two roles: the serving URL logs in as a role that is not the tables'
// owner, not superuser, has no BYPASSRLS and may create nothing; the admin
// URL logs in as the owner, which runs all DDL (schemas, databases, tables,
// policies, grants). CheckServingRole verifies this, and pooled and schema
// tenants are refused while it fails. Identifiers come only from
// tenant.StorageName() and the catalog, and are always quoted with
// pgx.Identifier.Sanitize.
//
// # The outbox
//
// Each unit keeps its tenants' change events (store.EventTx) beside their
// records, in tenant_events, numbered per tenant by a counter row in
// tenant_event_offsets (consumer "$head", a name no consumer can have)
// that the append bumps in the write's transaction, so the numbers are
// gapless, roll back with their transaction and survive trimming. Both
// tables have tenant_id first in their keys and get the records' row-level
// security, policies and grants. An append is held back like a record
// write and goes out in the batch of the next statement or of COMMIT: a
// write with its event takes the round trips of one without
// (eventsql.go).
//
// # Your own tables
//
// A team's own tables live beside the records, created by migrations
// (Options.Migrations, or Apply from the fleet runner in package migrate).
// Tx and ReadTx give a tenant-scoped pgx.Tx for them; With gives the pgx.Tx
// of a store transaction opened with store.TxOptions{SQL: true}, so that a
// record operation and the team's own statements commit together:
//
//	be, err := postgres.Open(ctx, postgres.Shard{Name: "main", URL: serveURL, AdminURL: ownerURL},
//		postgres.Options{Migrations: ms})
//	...
//	err = postgres.Tx(tenant.WithID(ctx, id), router, func(tx pgx.Tx) error {
//		_, err := tx.Exec(ctx, `INSERT INTO invoices (tenant_id, id, total)
//			VALUES (current_setting('bulkhead.tenant'), $1, $2)`, invID, total)
//		return err
//	})
//
// Package pgtest makes throwaway databases and roles for tests.
package postgres
