package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"modernc.org/sqlite"
)

// drv is a private instance of the modernc.org/sqlite driver carrying the
// functions the generated SQL needs, so that nothing is registered on the
// process-wide "sqlite" driver.
var drv = func() *sqlite.Driver {
	d := &sqlite.Driver{}
	d.MustRegisterDeterministicScalarFunction(fnJSONNumber, 1, jsonNumber)
	d.MustRegisterDeterministicScalarFunction(fnSealedMatch, 2, sealedMatch)
	return d
}()

// connector opens connections to one file through drv, each with its own
// statement cache and the guard's authorizer (see guard.go).
type connector struct{ dsn string }

func (c connector) Connect(context.Context) (driver.Conn, error) {
	dc, err := drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	cc := &cachingConn{conn: dc.(sqliteConn), stmts: map[string]*cachedStmt{}}
	ar, ok := dc.(sqlite.AuthorizerRegisterer)
	if !ok {
		_ = dc.Close()
		return nil, fmt.Errorf("sqlite: driver connection %T has no authorizer", dc)
	}
	if err := ar.RegisterAuthorizer(cc.authorize); err != nil {
		_ = dc.Close()
		return nil, fmt.Errorf("sqlite: install authorizer: %w", err)
	}
	return cc, nil
}

func (c connector) Driver() driver.Driver { return drv }

// sqliteConn is what database/sql uses of a modernc connection.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.SessionResetter
	driver.Validator
	driver.Pinger
}

// maxCachedStmts bounds the statements cached per connection. The backend
// generates fewer shapes than this.
const maxCachedStmts = 32

// cachingConn is a connection that parses each statement text once: the
// backend's generated statements are prepared on first use and kept for
// the connection's life. It does not implement driver.ExecerContext or
// driver.QueryerContext, so database/sql prepares every statement through
// PrepareContext, which answers from the cache.
//
// It also carries the guard's state (see guard.go): whether a guarded
// transaction is open, whether the call in progress is the store's own,
// and why the authorizer last refused an action.
//
// database/sql never uses a connection from two goroutines at once, and
// SQLite calls the authorizer on the goroutine of the call in progress, so
// none of this needs a lock.
type cachingConn struct {
	conn  sqliteConn
	stmts map[string]*cachedStmt

	guard   bool   // a guarded transaction is open
	trusted bool   // the call in progress is the store's own
	denied  string // why the authorizer refused an action in the call in progress
}

// authorize is the connection's SQLite authorizer.
func (c *cachingConn) authorize(action sqlite.AuthorizerActionCode, arg1, arg2, db, trigger string) sqlite.AuthorizerReturnCode {
	if why := authorize(c.guard, c.trusted, action, arg1, arg2, db, trigger); why != "" {
		if c.denied == "" {
			c.denied = why
		}
		return sqlite.AuthorizerDeny
	}
	return sqlite.AuthorizerOK
}

// call runs f as the store's own call if trusted, or as team SQL, and
// wraps a refusal of the authorizer with ErrRefused.
func (c *cachingConn) call(trusted bool, f func() error) error {
	prevTrusted, prevDenied := c.trusted, c.denied
	c.trusted, c.denied = trusted, ""
	err := f()
	why := c.denied
	c.trusted, c.denied = prevTrusted, prevDenied
	return refused(err, why)
}

// cachedStmt is a prepared statement. A cached one is kept across uses and
// handed out to one user at a time (a statement's rows must be closed
// before it is reset and run again); a second user meanwhile gets a
// statement of its own. Running it is the store's own call if ctx says so
// (see own).
type cachedStmt struct {
	driver.Stmt
	c      *cachingConn
	cached bool
	inUse  bool
}

// Close returns a cached statement to the cache (the connection finalizes
// it) and finalizes any other.
func (s *cachedStmt) Close() error {
	if s.cached {
		s.inUse = false
		return nil
	}
	return s.Stmt.Close()
}

var (
	_ driver.StmtExecContext  = (*cachedStmt)(nil)
	_ driver.StmtQueryContext = (*cachedStmt)(nil)
)

func (s *cachedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (res driver.Result, err error) {
	err = s.c.call(isOwn(ctx), func() error {
		res, err = s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
		return err
	})
	return res, err
}

func (s *cachedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (rows driver.Rows, err error) {
	err = s.c.call(isOwn(ctx), func() error {
		rows, err = s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
		return err
	})
	return rows, err
}

var (
	_ driver.ConnBeginTx        = (*cachingConn)(nil)
	_ driver.ConnPrepareContext = (*cachingConn)(nil)
	_ driver.SessionResetter    = (*cachingConn)(nil)
	_ driver.Validator          = (*cachingConn)(nil)
	_ driver.Pinger             = (*cachingConn)(nil)
)

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext answers the store's own statements (ctx marked by own)
// from the cache; any other statement is prepared afresh, under the
// guard, and finalized after use.
func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	trusted := isOwn(ctx)
	s := c.stmts[query]
	if trusted && s != nil && !s.inUse {
		s.inUse = true
		return s, nil
	}
	var ds driver.Stmt
	err := c.call(trusted, func() error {
		var err error
		ds, err = c.conn.PrepareContext(ctx, query)
		return err
	})
	if err != nil {
		return nil, err
	}
	if _, ok := ds.(driver.StmtQueryContext); !ok {
		return ds, nil
	}
	if _, ok := ds.(driver.StmtExecContext); !ok {
		return ds, nil
	}
	if !trusted || s != nil || len(c.stmts) >= maxCachedStmts {
		return &cachedStmt{Stmt: ds, c: c}, nil // uncached: database/sql closes it after use
	}
	s = &cachedStmt{Stmt: ds, c: c, cached: true, inUse: true}
	c.stmts[query] = s
	return s, nil
}

func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx begins a transaction, guarded if ctx says so (see guarded).
func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var dt driver.Tx
	err := c.call(true, func() error {
		var err error
		dt, err = c.conn.BeginTx(ctx, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.guard = isGuarded(ctx)
	return &connTx{Tx: dt, c: c}, nil
}

// connTx ends a transaction as the store's own call and ends its guard.
type connTx struct {
	driver.Tx
	c *cachingConn
}

func (t *connTx) Commit() error {
	err := t.c.call(true, t.Tx.Commit)
	t.c.guard = false
	return err
}

func (t *connTx) Rollback() error {
	err := t.c.call(true, t.Tx.Rollback)
	t.c.guard = false
	return err
}

func (c *cachingConn) ResetSession(ctx context.Context) error { return c.conn.ResetSession(ctx) }

func (c *cachingConn) IsValid() bool { return c.conn.IsValid() }

func (c *cachingConn) Ping(ctx context.Context) error {
	return c.call(true, func() error { return c.conn.Ping(ctx) })
}

// Unwrap returns the modernc connection, for sqlite.Limit.
func (c *cachingConn) Unwrap() driver.Conn { return c.conn }

// Close finalizes the cached statements and closes the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for q, s := range c.stmts {
		errs = append(errs, s.Stmt.Close())
		delete(c.stmts, q)
	}
	errs = append(errs, c.conn.Close())
	return errors.Join(errs...)
}
