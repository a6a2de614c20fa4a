// Package fleet is the front door to a tenant fleet: it creates tenants
// (placed by a pluggable rule, provisioned, with the team's migrations
// applied), offboards them (resuming offboardings a crash interrupted),
// migrates every unit that is behind, and reports each tenant's state,
// placement and migration version. The server, the bulkhead CLI and the
// examples all go through it, so the lifecycle is written once.
//
// A Fleet sits over the pieces below it: a catalog (tenants, placements
// and states), one store.Backend per shard, the store.Router it opens over
// them, and the team's migrations. OpenSQLite and OpenPostgres open all of
// them for a service on one shard — on PostgreSQL refusing a serving role
// that row-level security would not hold — and Close closes them:
//
//	f, err := fleet.OpenSQLite(ctx, dir, fleet.OpenOptions{Migrations: ms}) // ms: migrate.LoadDir(migrationsFS, "migrations")
//	defer f.Close()
//	_, err = f.Migrate(ctx, fleet.MigrateOptions{}) // tenants that are behind
//	t, err := f.Create(ctx, fleet.Spec{ID: "acme", Isolation: new("database")})
//	err = sqlite.Tx(tenant.WithID(ctx, t.ID), f.Router(), func(tx *sql.Tx) error { ... })
//	_, token, err := f.Catalog().CreateKey(ctx, t.ID, catalog.RoleWriter, "api")
//
// New makes a Fleet over pieces the caller opened (several shards, a
// backend of its own); their closing stays the caller's.
//
// # One record of a unit's version
//
// A unit — a shard's pooled tables, or one tenant's schema, database or
// SQLite file — records the migrations applied to it in its own table
// (schema_migrations), in the transaction of each migration. That table is
// the only record of the unit's version: Status, Migrate and `bulkhead
// migrate status|up` read it (migrate.VersionReader), and the catalog keeps
// no copy. A copy would be written after the unit's commit and could miss
// it (a crash, a provisioning that applied migrations without telling it),
// and then the two would disagree; the unit's own table cannot, because it
// commits with the migration. The price is that a status reads every unit
// instead of one catalog table: on PostgreSQL a few statements per shard
// for its pooled tables and schema tenants, and one connection per
// database tenant; on SQLite one read per tenant file.
//
// Create applies the migrations to a new schema or database tenant before
// it becomes active, so a tenant is served at the latest version or not at
// all: if provisioning or a migration fails, its storage is dropped and the
// catalog keeps nothing. A pooled tenant shares its shard's pooled tables,
// which a PostgreSQL backend migrates when it opens (with
// postgres.Options.Migrations) and Migrate brings up to date. The details
// are in docs/fleet.md.
//
// # Cursor keys
//
// The Router a Fleet opens needs a cursor key only to list records
// (store.Tx.List). A service that never lists leaves Config.Router's
// CursorKey nil; a List then fails with store.ErrNoCursorKey.
package fleet
