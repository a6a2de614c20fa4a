// Package postgres is the PostgreSQL store.Backend: one Backend per shard (a
// PostgreSQL server, reached through its main database), on
// github.com/jackc/pgx/v5's pgxpool. It hosts all three isolation modes,
// mixed per tenant:
//
//   - store.Pooled: tenants share the table bulkhead.records of the shard
//     database. Row-level security is enabled and forced on it (and on every
//     table of schema "bulkhead" with a tenant_id column), with policies that
//     compare tenant_id to (SELECT current_setting('bulkhead.tenant', true)):
//     with no tenant set a query sees zero rows, never all of them.
//   - store.Schema: one schema per tenant, named tenant.StorageName(), created
//     and migrated at Provision.
//   - store.Database: one database per tenant on the shard, named
//     Options.DatabasePrefix + tenant.StorageName(), with schema "bulkhead";
//     a pool per tenant database, opened lazily, at most
//     Options.MaxOpenDatabases open (idle ones closed least recently used
//     first).
//
// Every tenant transaction begins with one round trip that sends BEGIN and
// set_config('bulkhead.tenant', <id>, true) and set_config('search_path',
// <unit schema>, true): both are local to the transaction, so a pooled
// connection never carries a tenant to its next user however the
// transaction ends. Every mode keeps the same layout (tenant_id first in the
// primary key), the same policies and a tenant predicate in every statement:
// defence in depth.
//
// Two roles: the serving URL logs in as a role that is not the tables'
// owner, not superuser and has no BYPASSRLS; the admin URL logs in as the
// owner, which runs all DDL (schemas, databases, tables, policies, grants).
// CheckServingRole verifies this, and pooled tenants are refused while it
// fails. Identifiers come only from tenant.StorageName() and the catalog,
// and are always quoted with pgx.Identifier.Sanitize.
//
// A team's own tables live beside the records, created by migrations
// (Options.Migrations, or Apply from the fleet runner in package migrate);
// Tx gives a tenant-scoped pgx.Tx for them:
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
