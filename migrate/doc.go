// Package migrate applies versioned SQL migrations across the tenant fleet:
// once per shard for pooled tables, once per schema, once per tenant
// database. Each unit records its migrations in a table of its own, in the
// transaction of each migration, and that table is the only record of its
// version: a Plan reads it back through the backends (VersionReader), so a
// status cannot disagree with what the unit holds.
//
// A team keeps its migrations as files NNNN_name.sql, usually embedded:
//
//	//go:embed migrations/*.sql
//	var migrationsFS embed.FS
//
//	ms, err := migrate.LoadDir(migrationsFS, "migrations")
//
// Most services run them through package fleet, which lists the units and
// applies the migrations to each new tenant too. The Plan underneath:
//
//	units, err := cat.MigrationUnits(ctx, "main")       // catalog: one unit per placement
//	rep, err := migrate.Run(ctx, migrate.Plan{
//		Units:      units,
//		Appliers:   map[string]migrate.Applier{"main": backend}, // store/postgres, store/sqlite
//		Migrations: ms,
//	})
//
// Run reads every unit's version first (Plan.Status), then migrates the
// shards' pooled units, then schema and database tenants, a bounded number
// at a time. A failure stops the run: no further unit starts, units in
// flight finish, and the error names the unit and its tenant (a
// *UnitError). Each unit's migrations are transactional in the backend, so
// every unit is left on a version it fully reached.
package migrate
