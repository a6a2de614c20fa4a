package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var _ store.SQLBackend = (*Backend)(nil)

// sqlTx is a store transaction that also hands the team a pgx.Tx on the
// same connection and transaction.
type sqlTx struct {
	*tx
	ptx pgx.Tx
}

func (t *sqlTx) SQL() any { return t.ptx }

// Commit implements store.BackendTx.
func (t *sqlTx) Commit() error {
	if t.done {
		return store.ErrTxDone
	}
	t.done = true
	defer t.finish()
	if err := t.ptx.Commit(context.Background()); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// Rollback implements store.BackendTx.
func (t *sqlTx) Rollback() error {
	if t.done {
		return nil
	}
	t.done = true
	defer t.finish()
	return t.ptx.Rollback(context.Background())
}

// BeginSQL implements store.SQLBackend.
func (b *Backend) BeginSQL(ctx context.Context, id tenant.ID, mode store.Mode, write bool) (store.SQLBackendTx, error) {
	pool, release, err := b.pool(ctx, id, mode)
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		release()
		return nil, b.beginErr(id, mode, err)
	}
	ptx, err := conn.BeginTx(ctx, pgx.TxOptions{BeginQuery: beginSQL(id.String(), unitSchema(id, mode), write)})
	if err != nil {
		conn.Release()
		release()
		return nil, b.beginErr(id, mode, err)
	}
	t := &tx{conn: conn, begun: true, tenant: id.String(), path: ident(unitSchema(id, mode)), release: release}
	return &sqlTx{tx: t, ptx: ptx}, nil
}

// Tx runs fn in a read-write pgx transaction scoped to the tenant in ctx,
// for a team's own tables, in whatever mode the tenant is placed. It commits
// if fn returns nil and rolls back otherwise (also when fn panics,
// re-panicking). Without a tenant in ctx it fails with tenant.ErrMissing; a
// tenant placed on a shard that is not PostgreSQL gets an error wrapping
// store.ErrIsolationUnsupported.
func Tx(ctx context.Context, r *store.Router, fn func(pgx.Tx) error) error {
	return run(ctx, r, store.TxOptions{SQL: true}, fn)
}

// ReadTx is Tx for a read-only transaction.
func ReadTx(ctx context.Context, r *store.Router, fn func(pgx.Tx) error) error {
	return run(ctx, r, store.TxOptions{SQL: true, ReadOnly: true}, fn)
}

func run(ctx context.Context, r *store.Router, opts store.TxOptions, fn func(pgx.Tx) error) error {
	return r.Run(ctx, opts, func(stx *store.Tx) error {
		ptx, err := With(stx)
		if err != nil {
			return err
		}
		return fn(ptx)
	})
}

// With returns the pgx.Tx of a store transaction opened with
// store.TxOptions{SQL: true}: the team's own statements run in it, in the
// same transaction as stx's record operations.
func With(stx *store.Tx) (pgx.Tx, error) {
	h, err := stx.SQL()
	if err != nil {
		return nil, err
	}
	ptx, ok := h.(pgx.Tx)
	if !ok {
		return nil, fmt.Errorf("%w: tenant %s is not on a PostgreSQL shard (its transaction is a %T)", store.ErrIsolationUnsupported, stx.Tenant(), h)
	}
	return ptx, nil
}
