package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// pendingWrite is a write statement held back, and what its error means.
type pendingWrite struct {
	sql  string
	args []any
	fail func(error) error
}

// deferWrite holds back a write statement of a transaction that runs no
// team SQL, to go out with the next batch; fail maps its error. A
// transaction that runs team SQL sends it at once.
func (t *tx) deferWrite(ctx context.Context, sql string, fail func(error) error, args ...any) error {
	if t.team {
		_, err := execResult(t.send(ctx, sql, args...))
		if err != nil {
			return fail(err)
		}
		return nil
	}
	t.pending = append(t.pending, pendingWrite{sql: sql, args: args, fail: fail})
	return nil
}

// pendingQueries returns the held-back writes and their queries, named
// (and prepared if need be) before the batch's prefix is queued, as build
// names a batch's statements; they are no longer pending.
func (t *tx) pendingQueries(ctx context.Context) ([]*pgx.QueuedQuery, []pendingWrite, error) {
	pending := t.pending
	t.pending = nil
	q := make([]*pgx.QueuedQuery, len(pending))
	for i, p := range pending {
		name, err := t.name(ctx, p.sql)
		if err != nil {
			return nil, nil, err
		}
		q[i] = &pgx.QueuedQuery{SQL: name, Arguments: p.args}
	}
	return q, pending, nil
}

// readPending reads the results of the held-back writes queued on br.
func readPending(br pgx.BatchResults, pending []pendingWrite) error {
	for _, p := range pending {
		if _, err := br.Exec(); err != nil {
			return p.fail(err)
		}
	}
	return nil
}
