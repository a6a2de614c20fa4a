package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// ErrNoSQL: Tx.SQL was called on a transaction opened without
// TxOptions.SQL.
var ErrNoSQL = errors.New("store: transaction was not opened for own SQL (use TxOptions{SQL: true})")

// SQLBackend is the optional capability of a Backend to run a team's own SQL
// on its own tables in a tenant-scoped transaction, as database/sql/driver
// grows through optional interfaces. The Router finds it by type assertion;
// engine packages (store/postgres, store/sqlite) wrap it in typed helpers.
//
// The transaction it returns must confine every statement to the tenant it
// was opened for, whatever SQL the team runs in it, including SQL an
// attacker injected: the engine enforces this, not the team's code. A mode
// the engine cannot confine gets an error wrapping ErrIsolationUnsupported.
type SQLBackend interface {
	Backend
	// BeginSQL is Begin for a transaction in which the team's own SQL runs
	// beside the record operations.
	BeginSQL(ctx context.Context, id tenant.ID, mode Mode, write bool) (SQLBackendTx, error)
}

// SQLBackendTx is a BackendTx that also carries the engine's own handle on
// the same transaction.
type SQLBackendTx interface {
	BackendTx
	// SQL returns the engine's handle: a pgx.Tx for store/postgres, a
	// *sql.Tx for store/sqlite.
	SQL() any
}

// SQL returns the engine's handle on the transaction (a pgx.Tx for
// store/postgres, a *sql.Tx for store/sqlite) for the team's own
// statements, which run in the same transaction as tx's record operations.
// The transaction must have been opened with TxOptions.SQL; otherwise SQL
// returns ErrNoSQL. Engine packages offer typed helpers (postgres.With,
// sqlite.With).
func (tx *Tx) SQL() (any, error) {
	if tx.done {
		return nil, ErrTxDone
	}
	s, ok := tx.btx.(SQLBackendTx)
	if !ok {
		return nil, ErrNoSQL
	}
	return s.SQL(), nil
}

// beginBackend opens the backend transaction for sc with opts.
func beginBackend(ctx context.Context, sc Scope, opts TxOptions) (BackendTx, error) {
	if !opts.SQL {
		return sc.backend.Begin(ctx, sc.Tenant, sc.Placement.Mode, !opts.ReadOnly)
	}
	sb, ok := sc.backend.(SQLBackend)
	if !ok {
		return nil, fmt.Errorf("%w: shard %q (%T) cannot run own SQL", ErrIsolationUnsupported, sc.Placement.Shard, sc.backend)
	}
	return sb.BeginSQL(ctx, sc.Tenant, sc.Placement.Mode, !opts.ReadOnly)
}
