package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// upgradeFix tells an operator how to let Backend upgrade a unit, or how to
// upgrade every unit up front.
const upgradeFix = "give the Backend the owner role's admin URL (Shard.AdminURL), with which it upgrades a unit on first use, " +
	"or upgrade every unit up front with it (package migrate; `bulkhead migrate up`)"

// unitTables are the tables of a unit that earlier versions of Bulkhead did
// not create (besides records, which every version has): a unit without one
// of them is upgraded by ensureCurrent.
var unitTables = []string{"schema_migrations", "tenant_usage", "tenant_events", "tenant_event_offsets"}

// unitState is what a Backend knows of one schema or database unit: whether
// it has been found current in this process, and a lock that lets one
// caller at a time check it, so that a unit's first concurrent uses cost one
// check between them.
type unitState struct {
	lock    chan struct{} // holds a token while the unit is checked
	current bool          // guarded by lock
}

func unitKey(id tenant.ID, mode store.Mode) string { return string(mode) + "/" + id.String() }

// markCurrent records that tenant id's unit in mode has everything this
// version of Bulkhead expects (it has just been provisioned or migrated).
func (b *Backend) markCurrent(id tenant.ID, mode store.Mode) {
	s := &unitState{lock: make(chan struct{}, 1), current: true}
	b.units.Store(unitKey(id, mode), s)
}

// forgetUnit drops what is known of tenant id's unit (it has been dropped),
// so that the set of known units does not outgrow the shard's tenants.
func (b *Backend) forgetUnit(id tenant.ID, mode store.Mode) {
	b.units.Delete(unitKey(id, mode))
}

// ensureCurrent makes sure, once per process, that tenant id's unit has
// every table this version of Bulkhead uses: units provisioned by an
// earlier version have no tenant_usage table, which every write (the quota
// check) and the usage read need, and a tenant database without it cannot
// even be connected to (prepareStatements prepares the usage statements).
// A unit found current is remembered, so afterwards this costs a map lookup
// and no round trip. The pooled unit needs no check: Open ensures it.
//
// The check and any upgrade run as the admin role, outside the tenant's
// transaction: DDL is the owner's, and a statement failing on a missing
// table would abort the tenant's transaction.
func (b *Backend) ensureCurrent(ctx context.Context, id tenant.ID, mode store.Mode) error {
	if mode == store.Pooled {
		return nil
	}
	key := unitKey(id, mode)
	v, ok := b.units.Load(key)
	if !ok {
		v, _ = b.units.LoadOrStore(key, &unitState{lock: make(chan struct{}, 1)})
	}
	s := v.(*unitState)
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("postgres: tenant %s: check its %s unit: %w", id, mode, ctx.Err())
	}
	defer func() { <-s.lock }()
	if s.current {
		return nil
	}
	if err := b.upgrade(ctx, id, mode); err != nil {
		// A unit that could not be checked may not exist (an unknown or
		// dropped tenant): remember nothing of it.
		b.units.CompareAndDelete(key, s)
		return err
	}
	s.current = true
	return nil
}

// upgrade checks tenant id's unit and, if it lacks one of unitTables or the
// sealed tenant (seal.go: policies of earlier versions compared a plain
// setting), adds what is missing through the same statements that provision it
// (ensureStmts, then secure for row-level security, policies and grants).
// A unit that does not exist is not created: that is an unknown tenant.
func (b *Backend) upgrade(ctx context.Context, id tenant.ID, mode store.Mode) error {
	if b.admin == nil || b.adminDB == nil {
		return fmt.Errorf("postgres: tenant %s: cannot check its %s unit for tables added by this version of Bulkhead (%v): the backend has no admin pool; %s",
			id, mode, unitTables, upgradeFix)
	}
	var db interface {
		beginner
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	} = b.admin
	dbName, schema := "", unitSchema(id, mode)
	if mode == store.Database {
		dbName = b.dbName(id)
		conn, err := b.adminConn(ctx, dbName)
		if err != nil {
			return b.upgradeErr(id, mode, err)
		}
		defer func() { _ = conn.Close(context.Background()) }()
		db = conn
	}
	qualified := make([]string, len(unitTables))
	for i, t := range unitTables {
		qualified[i] = ident(schema, t)
	}
	var exists, current bool
	err := db.QueryRow(ctx, sqlUnitCurrent, ident(schema, "records"), qualified, schema).Scan(&exists, &current)
	if err != nil {
		return b.upgradeErr(id, mode, err)
	}
	if !exists {
		return b.upgradeErr(id, mode, fmt.Errorf("%s: %w", ident(schema), errNoRecords))
	}
	if current {
		return nil
	}
	err = pgx.BeginTxFunc(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// The unit's advisory lock first, as Provision and Apply take it,
		// so that they queue up rather than deadlock. Then a lock on the
		// records table: it fails if Drop removed the unit since the check,
		// and keeps Drop waiting until this commits, so ensureStmts (CREATE
		// SCHEMA IF NOT EXISTS) cannot bring a dropped tenant back.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(dbName, schema)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE `+ident(schema, "records")+` IN ACCESS SHARE MODE`); err != nil {
			return err
		}
		if err := b.ensureUnit(ctx, tx, dbName, schema, mode); err != nil {
			return err
		}
		return b.secure(ctx, tx, schema, mode, false)
	})
	if err != nil {
		return b.upgradeErr(id, mode, err)
	}
	return nil
}

// sqlUnitCurrent reports whether unit schema $3 exists (its records table
// $1 does) and has everything this version uses: the tables $2, the seal's
// functions and key table in its database, and row-level security forced
// with sealed policies on every table the serving role may use.
const sqlUnitCurrent = `SELECT to_regclass($1) IS NOT NULL,
	(SELECT bool_and(to_regclass(t) IS NOT NULL) FROM unnest($2::text[]) t)
	AND to_regprocedure('bulkhead.tenant_in(text)') IS NOT NULL
	AND to_regclass('bulkhead_secret.setting') IS NOT NULL
	AND NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $3 AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations'
		  AND (NOT (c.relrowsecurity AND c.relforcerowsecurity)
		    OR NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = '` + guardName + `'
		      AND pg_get_expr(p.polqual, p.polrelid) LIKE '%bulkhead.tenant_in(%')))`

// errNoRecords reports a unit without its records table: never provisioned.
var errNoRecords = errors.New("no records table")

// upgradeErr wraps an error of upgrade: a missing database, schema or
// records table is an unknown tenant (not provisioned, or dropped);
// anything else says how to let the upgrade through.
func (b *Backend) upgradeErr(id tenant.ID, mode store.Mode, err error) error {
	if errors.Is(err, errNoRecords) || isCode(err, "3D000") || isCode(err, "3F000") || isCode(err, "42P01") {
		// invalid_catalog_name, invalid_schema_name, undefined_table
		return fmt.Errorf("%w: tenant %s has no %s on shard %s (provision it first): %v", store.ErrUnknownTenant, id, mode, b.shard.Name, err)
	}
	return fmt.Errorf("postgres: tenant %s: upgrade its %s unit on shard %s with the tables this version of Bulkhead uses (%v): %w; %s",
		id, mode, b.shard.Name, unitTables, err, upgradeFix)
}
