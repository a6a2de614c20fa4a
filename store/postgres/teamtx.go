package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// teamTx is the pgx.Tx a team's own SQL runs in (Tx, ReadTx, With): the
// same connection and transaction as the store's record operations, sealed
// for the tenant in the same round trip as its first statement (read-only:
// each statement in its own sealed implicit transaction; see tx).
//
// Every statement is sent with the extended protocol, prepared once per
// connection and unit (stmts.go): one statement per call. Statements that
// would prepare or drop prepared statements, or end the transaction, are
// refused before they are sent (guard.go).
type teamTx struct {
	t       *tx
	aliases map[string]string // names given to Prepare → their SQL
	depth   int               // savepoints open
}

var _ pgx.Tx = (*teamTx)(nil)

// errReadOnlyTeam reports an operation a read-only tenant transaction does
// not offer.
var errReadOnlyTeam = errors.New("postgres: not available in a read-only tenant transaction (each statement runs in its own sealed implicit transaction); use postgres.Tx")

// statement returns the prepared name of sql (rewritten by a
// pgx.QueryRewriter first argument) for the transaction's unit, preparing
// it on the connection the first time (stmts.go).
func (x *teamTx) statement(ctx context.Context, sql string, args []any) (string, []any, error) {
	if err := x.check(ctx); err != nil {
		return "", nil, err
	}
	if len(args) > 0 {
		if qr, ok := args[0].(pgx.QueryRewriter); ok {
			var err error
			if sql, args, err = qr.RewriteQuery(ctx, x.t.conn.Conn(), sql, args[1:]); err != nil {
				return "", nil, fmt.Errorf("postgres: rewrite query: %w", err)
			}
		}
	}
	if q, ok := x.aliases[sql]; ok {
		sql = q
	}
	if err := refusedStatement(sql); err != nil {
		return "", nil, err
	}
	name, err := x.t.name(ctx, sql)
	return name, args, err
}

// check fails closed if the transaction is finished or ctx names another
// tenant than the one it was begun for, as store.Tx does.
func (x *teamTx) check(ctx context.Context) error {
	if x.t.done {
		return pgx.ErrTxClosed
	}
	if id, err := tenant.FromContext(ctx); err == nil && id.String() != x.t.tenant {
		return store.ErrTenantMismatch
	}
	return nil
}

// Exec implements pgx.Tx.
func (x *teamTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := x.check(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return execResult(x.t.sendBatch(ctx, x.one(ctx, sql, args)))
}

// Query implements pgx.Tx.
func (x *teamTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := x.check(ctx); err != nil {
		return nil, err
	}
	br, err := x.t.sendBatch(ctx, x.one(ctx, sql, args))
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// QueryRow implements pgx.Tx.
func (x *teamTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := x.Query(ctx, sql, args...)
	return &row{rows: rows, err: err}
}

// SendBatch implements pgx.Tx: the batch's statements follow the seal in
// one round trip.
func (x *teamTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := x.check(ctx); err != nil {
		return &errBatch{err: err}
	}
	br, err := x.t.sendBatch(ctx, func() ([]*pgx.QueuedQuery, error) {
		qs := make([]*pgx.QueuedQuery, len(b.QueuedQueries))
		for i, q := range b.QueuedQueries {
			name, args, err := x.statement(ctx, q.SQL, q.Arguments)
			if err != nil {
				return nil, err
			}
			c := *q
			c.SQL, c.Arguments = name, args
			qs[i] = &c
		}
		return qs, nil
	})
	if err != nil {
		return &errBatch{err: err}
	}
	return br
}

// one returns the build function of a batch of one team statement.
func (x *teamTx) one(ctx context.Context, sql string, args []any) func() ([]*pgx.QueuedQuery, error) {
	return func() ([]*pgx.QueuedQuery, error) {
		name, args, err := x.statement(ctx, sql, args)
		if err != nil {
			return nil, err
		}
		return []*pgx.QueuedQuery{{SQL: name, Arguments: args}}, nil
	}
}

// Prepare implements pgx.Tx: name becomes an alias of sql in this
// transaction; the statement itself is prepared under a name SQL cannot
// forge.
func (x *teamTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	stmt, _, err := x.statement(ctx, sql, nil)
	if err != nil {
		return nil, err
	}
	if x.aliases == nil {
		x.aliases = make(map[string]string)
	}
	x.aliases[name] = sql
	return x.t.conn.Conn().Prepare(ctx, stmt, sql) // known: no round trip
}

// CopyFrom implements pgx.Tx (read-write transactions only). PostgreSQL
// refuses COPY FROM into a table with row-level security.
func (x *teamTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := x.begin(ctx); err != nil {
		return 0, err
	}
	return x.t.conn.Conn().CopyFrom(ctx, table, columns, src)
}

// LargeObjects implements pgx.Tx by panicking: large objects are not
// tenant-scoped (any transaction of the serving role could read them), so
// a tenant transaction does not offer them.
func (x *teamTx) LargeObjects() pgx.LargeObjects {
	panic("postgres: large objects are not tenant-scoped and are not available in a tenant transaction")
}

// Conn implements pgx.Tx. Statements sent on the connection directly are
// not guarded (guard.go) and see the tenant only once a read-write
// transaction has begun (after its first statement); otherwise they see no
// tenant's rows. Once the transaction is done it returns nil: the
// connection serves other tenants.
func (x *teamTx) Conn() *pgx.Conn {
	if x.t.done || x.t.conn == nil {
		return nil
	}
	return x.t.conn.Conn()
}

// begin makes sure a read-write transaction has sent BEGIN and its seal.
func (x *teamTx) begin(ctx context.Context) error {
	if err := x.check(ctx); err != nil {
		return err
	}
	if !x.t.write {
		return errReadOnlyTeam
	}
	if x.t.begun {
		return nil
	}
	br, err := x.t.sendBatch(ctx, func() ([]*pgx.QueuedQuery, error) { return nil, nil })
	if err != nil {
		return err
	}
	return br.Close()
}

// Begin implements pgx.Tx with a savepoint (read-write transactions only).
func (x *teamTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := x.begin(ctx); err != nil {
		return nil, err
	}
	x.depth++
	sp := &savepoint{teamTx: x, name: "bulkhead_sp_" + strconv.Itoa(x.depth)}
	if _, err := x.t.conn.Exec(ctx, "SAVEPOINT "+sp.name); err != nil {
		x.depth--
		return nil, err
	}
	return sp, nil
}

// Commit and Rollback implement pgx.Tx; the store transaction they share
// commits or rolls back (Tx and ReadTx call them for the team).
func (x *teamTx) Commit(context.Context) error   { return x.t.Commit() }
func (x *teamTx) Rollback(context.Context) error { return x.t.Rollback() }

// savepoint is a pgx.Tx nested in a teamTx.
type savepoint struct {
	*teamTx
	name string
	done bool
}

// Commit releases the savepoint.
func (s *savepoint) Commit(ctx context.Context) error {
	if s.done {
		return pgx.ErrTxClosed
	}
	s.done = true
	_, err := s.t.conn.Exec(ctx, "RELEASE SAVEPOINT "+s.name)
	return err
}

// Rollback rolls back to the savepoint.
func (s *savepoint) Rollback(ctx context.Context) error {
	if s.done {
		return nil
	}
	s.done = true
	_, err := s.t.conn.Exec(ctx, "ROLLBACK TO SAVEPOINT "+s.name)
	return err
}

// batchRows closes the batch its rows came from.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.br.Close()
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// row is pgx.Row over batchRows.
type row struct {
	rows pgx.Rows
	err  error
}

func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// errBatch is the BatchResults of a batch that could not be sent.
type errBatch struct{ err error }

func (e *errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, e.err }
func (e *errBatch) Query() (pgx.Rows, error)         { return nil, e.err }
func (e *errBatch) QueryRow() pgx.Row                { return &row{err: e.err} }
func (e *errBatch) Close() error                     { return e.err }
func (e *errBatch) Tx() pgx.Tx                       { return nil }
