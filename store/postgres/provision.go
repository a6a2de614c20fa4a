package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Provision prepares storage for tenant id: nothing in pooled mode; its
// schema (schema mode) or database (database mode) with the records table,
// row-level security, grants and Options.Migrations. It is idempotent.
func (b *Backend) Provision(ctx context.Context, id tenant.ID, mode store.Mode) error {
	if err := b.check(id, mode); err != nil {
		return err
	}
	switch mode {
	case store.Schema:
	case store.Database:
		if err := b.createDatabase(ctx, id); err != nil {
			return err
		}
	default:
		return nil
	}
	if _, err := b.applyUnit(ctx, migrate.Unit{Shard: b.shard.Name, Mode: mode, Tenant: id}, b.opts.Migrations, true); err != nil {
		return fmt.Errorf("postgres: provision tenant %s: %w", id, err)
	}
	return nil
}

// createDatabase creates tenant id's database, reachable only by the owner
// and the serving role.
func (b *Backend) createDatabase(ctx context.Context, id tenant.ID) error {
	name := b.dbName(id)
	if b.handles.Dropping(id) {
		return fmt.Errorf("postgres: tenant %s database is being dropped; provision it again when the drop is done", id)
	}
	var exists bool
	if err := b.admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: provision tenant database: %w", err)
	}
	if !exists {
		_, err := b.admin.Exec(ctx, `CREATE DATABASE `+ident(name))
		var pe *pgconn.PgError
		if err != nil && !(errors.As(err, &pe) && pe.Code == "42P04") { // duplicate_database: a concurrent Provision
			return fmt.Errorf("postgres: create tenant database: %w", err)
		}
	}
	_, err := b.admin.Exec(ctx, `REVOKE ALL ON DATABASE `+ident(name)+` FROM PUBLIC; GRANT CONNECT ON DATABASE `+ident(name)+` TO `+ident(b.role))
	if err != nil {
		return fmt.Errorf("postgres: grant on tenant database: %w", err)
	}
	return nil
}

// Drop removes all of tenant id's data: its rows in every pooled table with
// a tenant_id column, its schema (schema mode), or its database (database
// mode, closing its pool first and terminating other sessions on it). In
// database mode it waits for the tenant's transactions in flight here to
// finish (or ctx to end) and meanwhile refuses new ones. It is idempotent.
func (b *Backend) Drop(ctx context.Context, id tenant.ID, mode store.Mode) error {
	if err := b.check(id, mode); err != nil {
		return err
	}
	switch mode {
	case store.Pooled:
		return b.dropRows(ctx, id)
	case store.Schema:
		defer b.forgetUnit(id, mode)
		if _, err := b.admin.Exec(ctx, `DROP SCHEMA IF EXISTS `+ident(id.StorageName())+` CASCADE`); err != nil {
			return fmt.Errorf("postgres: drop tenant schema: %w", err)
		}
		return nil
	}
	defer b.forgetUnit(id, mode)
	if b.replica != nil {
		if err := b.replica.forget(ctx, id); err != nil && !errors.Is(err, ErrClosed) {
			return err
		}
	}
	return b.dropDatabase(ctx, id)
}

// dropRows deletes tenant id's rows from every table of the pooled schema
// with a tenant_id column, as admin with the tenant sealed (row-level
// security is forced on the owner too). Tables referencing others are retried until
// no delete fails, so foreign keys between team tables need no order.
func (b *Backend) dropRows(ctx context.Context, id tenant.ID) error {
	conn, err := b.admin.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: drop tenant rows: %w", err)
	}
	defer conn.Release()
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// Row-level security is forced on the owner too: set the tenant.
		if _, err := tx.Exec(ctx, sqlSeal, b.sealArgs(id.String(), pooledSchema, true)...); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, sqlTables, pooledSchema, b.role)
		if err != nil {
			return err
		}
		var tables []string
		for rows.Next() {
			t, err := scanTable(rows)
			if err != nil {
				return err
			}
			if t.tenantID {
				tables = append(tables, t.name)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for pass := 0; len(tables) > 0; pass++ {
			var failed []string
			var last error
			for _, t := range tables {
				_, err := tx.Exec(ctx, `SAVEPOINT bulkhead_drop; DELETE FROM `+ident(pooledSchema, t)+` WHERE tenant_id = `+literal(id.String())+`; RELEASE SAVEPOINT bulkhead_drop`)
				if err != nil {
					if _, rerr := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT bulkhead_drop`); rerr != nil {
						return rerr
					}
					failed, last = append(failed, t), err
				}
			}
			if len(failed) == len(tables) {
				return last
			}
			tables = failed
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: drop tenant rows: %w", err)
	}
	return nil
}
