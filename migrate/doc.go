// Package migrate applies versioned SQL migrations across the tenant fleet:
// once per shard for pooled tables, once per schema, once per tenant
// database. Versions live in the catalog, so a run with nothing to apply
// reads one table and opens no tenant's transaction.
//
// A team keeps its migrations as files NNNN_name.sql, usually embedded:
//
//	//go:embed migrations/*.sql
//	var migrationsFS embed.FS
//
//	ms, err := migrate.LoadDir(migrationsFS, "migrations")
//	...
//	units, err := cat.MigrationUnits(ctx, "main")       // catalog: one unit per placement
//	rep, err := migrate.Run(ctx, migrate.Plan{
//		Units:      units,
//		State:      cat,                                 // the catalog records versions
//		Appliers:   map[string]migrate.Applier{"main": backend}, // store/postgres
//		Migrations: ms,
//	})
//
// Run migrates the shards' pooled units first, then schema and database
// tenants, a bounded number at a time. A failure stops the run: no further
// unit starts, units in flight finish, and the error names the unit and its
// tenant (a *UnitError). Each unit's migrations are transactional in the
// backend and a unit's version is recorded only after its Apply succeeds,
// so every unit is left on a version it fully reached.
package migrate
