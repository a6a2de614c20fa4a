package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"

	"modernc.org/sqlite"
)

// drv is a private instance of the modernc.org/sqlite driver carrying the
// functions the generated SQL needs, so that nothing is registered on the
// process-wide "sqlite" driver.
var drv = func() *sqlite.Driver {
	d := &sqlite.Driver{}
	d.MustRegisterDeterministicScalarFunction(fnJSONNumber, 1, jsonNumber)
	return d
}()

// connector opens connections to one file through drv, each with its own
// statement cache.
type connector struct{ dsn string }

func (c connector) Connect(context.Context) (driver.Conn, error) {
	dc, err := drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &cachingConn{conn: dc.(sqliteConn), stmts: map[string]*cachedStmt{}}, nil
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
// database/sql never uses a connection from two goroutines at once, so the
// cache needs no lock.
type cachingConn struct {
	conn  sqliteConn
	stmts map[string]*cachedStmt
}

// cachedStmt is a prepared statement kept across uses. It is handed out to
// one user at a time (a statement's rows must be closed before it is reset
// and run again); a second user meanwhile gets a statement of its own.
type cachedStmt struct {
	driver.Stmt
	inUse bool
}

// Close returns the statement to the cache; the connection finalizes it.
func (s *cachedStmt) Close() error {
	s.inUse = false
	return nil
}

var (
	_ driver.StmtExecContext  = (*cachedStmt)(nil)
	_ driver.StmtQueryContext = (*cachedStmt)(nil)
)

func (s *cachedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *cachedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
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

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	s := c.stmts[query]
	if s != nil && !s.inUse {
		s.inUse = true
		return s, nil
	}
	ds, err := c.conn.PrepareContext(ctx, query)
	if err != nil || s != nil || len(c.stmts) >= maxCachedStmts {
		return ds, err // uncached: database/sql closes it after use
	}
	if _, ok := ds.(driver.StmtQueryContext); !ok {
		return ds, nil
	}
	s = &cachedStmt{Stmt: ds, inUse: true}
	c.stmts[query] = s
	return s, nil
}

func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.conn.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.conn.BeginTx(ctx, opts)
}

func (c *cachingConn) ResetSession(ctx context.Context) error { return c.conn.ResetSession(ctx) }

func (c *cachingConn) IsValid() bool { return c.conn.IsValid() }

func (c *cachingConn) Ping(ctx context.Context) error { return c.conn.Ping(ctx) }

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
