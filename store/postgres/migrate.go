package postgres

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
)

// beginner is a pool or a connection.
type beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Apply implements migrate.Applier. As the admin role, it makes sure the
// unit exists with its records table, row-level security and grants, then
// applies the migrations of ms above the unit's current version in order,
// one transaction per migration, recording each in the unit's own
// schema_migrations table (so Apply is idempotent and safe to run from
// several processes: each unit is locked while it changes). After each
// migration every table of the unit is secured (see CheckServingRole): in
// pooled units, tables with a tenant_id column get row-level security
// enabled and forced, the tenant policies and DML grants for the serving
// role. Migrations run with search_path set to the unit's schema, so they
// name their tables unqualified. Apply returns the unit's new version.
//
// The unit's tenant must be zero for store.Pooled and set for the other
// modes; a schema or database unit must have been provisioned.
func (b *Backend) Apply(ctx context.Context, u migrate.Unit, ms []migrate.Migration) (int, error) {
	return b.applyUnit(ctx, u, ms, false)
}

// applyUnit is Apply; with atomic set (Provision) it creates the unit and
// applies all its migrations in one transaction, so that a new tenant
// appears complete or not at all, with one commit.
func (b *Backend) applyUnit(ctx context.Context, u migrate.Unit, ms []migrate.Migration, atomic bool) (int, error) {
	if u.Shard != b.shard.Name {
		return 0, fmt.Errorf("postgres: unit %s is not on shard %s", u, b.shard.Name)
	}
	if err := b.Supports(u.Mode); err != nil {
		return 0, err
	}
	if (u.Mode == store.Pooled) != u.Tenant.IsZero() {
		return 0, fmt.Errorf("postgres: unit %s: pooled units have no tenant, schema and database units have one", u)
	}
	ms = append([]migrate.Migration(nil), ms...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version <= 0 || i > 0 && ms[i-1].Version == m.Version {
			return 0, fmt.Errorf("postgres: unit %s: migration versions must be positive and distinct (%d)", u, m.Version)
		}
	}
	var db beginner = b.admin
	dbName, schema := "", pooledSchema
	switch u.Mode {
	case store.Schema:
		schema = u.Tenant.StorageName()
	case store.Database:
		dbName = b.dbName(u.Tenant)
		conn, err := b.adminConn(ctx, dbName)
		if err != nil {
			return 0, fmt.Errorf("postgres: unit %s: connect as admin: %w", u, err)
		}
		defer func() { _ = conn.Close(context.Background()) }()
		db = conn
	}
	v, err := b.apply(ctx, db, dbName, schema, u.Mode, ms, atomic)
	if err != nil {
		return v, fmt.Errorf("postgres: unit %s: %w", u, err)
	}
	if u.Mode != store.Pooled {
		b.markCurrent(u.Tenant, u.Mode)
	}
	return v, nil
}

// adminConn connects to database dbName (a tenant database) as the admin
// role; the caller closes the connection.
func (b *Backend) adminConn(ctx context.Context, dbName string) (*pgx.Conn, error) {
	cfg := b.adminDB.ConnConfig.Copy()
	cfg.Database = dbName
	return pgx.ConnectConfig(ctx, cfg)
}

// ensureStmts returns the statements that create the unit with schema
// (unquoted) in database dbName ("" for the shard's own database), or add
// what an earlier version of Bulkhead did not create: ensureSQL; in a
// schema named "bulkhead" (the pooled unit, and every tenant database) the
// secret setting's table and bulkhead.tenant_in (see seal.go); and in schema and database
// mode the serving role's default privileges. They take the unit's
// advisory lock first and do nothing that is already done, so they are
// safe to run on a unit that is current. ensureUnit runs them.
func (b *Backend) ensureStmts(dbName, schema string, mode store.Mode) string {
	s := ident(schema)
	ensure := ensureSQL(lockKey(dbName, schema), s, ident(b.role))
	if schema == pooledSchema {
		ensure += ";\n" + secretSQL + ";\n" + tenantInSQL(ident(b.role))
	}
	if mode != store.Pooled {
		// Tables a team's migration creates belong to the tenant; let the
		// serving role use them from the start (secure grants them again,
		// with the unit's policies).
		ensure += `;
ALTER DEFAULT PRIVILEGES IN SCHEMA ` + s + ` GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ` + ident(b.role)
	}
	if mode == store.Database {
		ensure += `;
ALTER DEFAULT PRIVILEGES IN SCHEMA ` + s + ` GRANT USAGE, SELECT ON SEQUENCES TO ` + ident(b.role)
	}
	return ensure
}

// ensureUnit runs ensureStmts in tx and, in a tenant database, stores the
// shard's secret setting name there.
func (b *Backend) ensureUnit(ctx context.Context, tx pgx.Tx, dbName, schema string, mode store.Mode) error {
	if _, err := tx.Exec(ctx, b.ensureStmts(dbName, schema, mode)); err != nil {
		return err
	}
	if mode == store.Database {
		if _, err := tx.Exec(ctx, copySecretSQL, b.secret); err != nil {
			return fmt.Errorf("store the secret tenant setting: %w", err)
		}
	}
	return nil
}

func (b *Backend) apply(ctx context.Context, db beginner, dbName, schema string, mode store.Mode, ms []migrate.Migration, atomic bool) (int, error) {
	lock := lockKey(dbName, schema)
	s := ident(schema)
	var cur int
	err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := b.ensureUnit(ctx, tx, dbName, schema, mode); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+s+`.schema_migrations`).Scan(&cur); err != nil {
			return fmt.Errorf("read version: %w", err)
		}
		applied := false
		for _, m := range ms {
			if !atomic || m.Version <= cur {
				continue
			}
			if err := runMigration(ctx, tx, s, m); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
			}
			applied = true
		}
		if applied {
			cur = ms[len(ms)-1].Version
		}
		return b.secure(ctx, tx, schema, mode, applied)
	})
	if err != nil {
		return 0, err
	}
	for _, m := range ms {
		if m.Version <= cur {
			continue
		}
		next := cur
		err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lock); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+s+`.schema_migrations`).Scan(&next); err != nil {
				return fmt.Errorf("read version: %w", err)
			}
			if m.Version <= next {
				return nil // another process applied it meanwhile
			}
			if err := runMigration(ctx, tx, s, m); err != nil {
				return err
			}
			next = m.Version
			return b.secure(ctx, tx, schema, mode, true)
		})
		if err != nil {
			return cur, fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
		}
		cur = max(cur, next)
	}
	return cur, nil
}

// runMigration runs m in unit schema s (quoted) and records it.
func runMigration(ctx context.Context, tx pgx.Tx, s string, m migrate.Migration) error {
	if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, s); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+s+`.schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
	return err
}
