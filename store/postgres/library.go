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
	team *teamTx
}

// SQL implements store.SQLBackendTx: a pgx.Tx.
func (t *sqlTx) SQL() any { return t.team }

// BeginSQL implements store.SQLBackend: the transaction's SQL() is a pgx.Tx
// sealed for tenant id like the record operations (see seal.go), in every
// mode.
func (b *Backend) BeginSQL(ctx context.Context, id tenant.ID, mode store.Mode, write bool) (store.SQLBackendTx, error) {
	t, err := b.newTx(ctx, id, mode, write)
	if err != nil {
		return nil, err
	}
	t.team = true
	return &sqlTx{tx: t, team: &teamTx{t: t}}, nil
}

// Tx runs fn in a read-write pgx transaction scoped to the tenant in ctx,
// for a team's own tables, in whatever mode the tenant is placed; tables
// are named unqualified (search_path is the tenant's unit). It commits if
// fn returns nil and rolls back otherwise (also when fn panics,
// re-panicking). Without a tenant in ctx it fails with tenant.ErrMissing; a
// tenant placed on a shard that is not PostgreSQL gets an error wrapping
// store.ErrIsolationUnsupported.
//
// Whatever SQL fn runs — including SQL injected into it — sees and changes
// only the tenant's rows: the database checks a sealed tenant that no
// statement can forge (see the package documentation).
func Tx(ctx context.Context, r *store.Router, fn func(pgx.Tx) error) error {
	return run(ctx, r, store.TxOptions{SQL: true}, fn)
}

// ReadTx is Tx for reads: the transaction is read-only, and each statement
// runs sealed in its own implicit transaction, in one round trip. Under
// READ COMMITTED every statement sees its own snapshot anyway; Begin
// (savepoints) and CopyFrom are not offered.
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
// same transaction as stx's record operations. Commit and roll back stx,
// not the pgx.Tx.
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
