package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/internal/handles"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var (
	_ store.Backend   = (*Backend)(nil)
	_ migrate.Applier = (*Backend)(nil)
)

// ErrClosed reports use of a Backend after Close.
var ErrClosed = errors.New("postgres backend is closed")

// ErrUnsafeServingRole reports a serving role that row-level security would
// not hold: a superuser, a role with BYPASSRLS, the owner (or a member of
// the owner) of the tenant tables, or one that may create objects or run DO
// blocks (see CheckServingRole). Pooled and schema tenants, which share the
// serving connections, are refused while it holds.
var ErrUnsafeServingRole = errors.New("unsafe PostgreSQL serving role")

// Defaults for Options.
const (
	DefaultMaxOpenDatabases = 64
	DefaultMaxConns         = 8
)

// Shard is one PostgreSQL server (its main database) hosting tenants.
type Shard struct {
	Name     string // shard name used in placements
	URL      string // serving role: not owner, not superuser, no BYPASSRLS
	AdminURL string // owner/migrator role: runs DDL (schemas, databases, tables, policies, grants)
}

// Options configures a Backend. The zero value uses the defaults.
type Options struct {
	// MaxOpenDatabases bounds the tenant database pools (database mode) kept
	// open; idle ones are closed least recently used first. A pool with a
	// transaction in flight is never closed. Default 64.
	MaxOpenDatabases int
	// MaxConns bounds the connections of each pool: the serving pool, the
	// admin pool and each tenant database's pool. Default 8.
	MaxConns int32
	// Migrations are the team's own SQL migrations, applied to every unit:
	// the shard's pooled schema at Open, each schema or database tenant at
	// Provision (see Apply).
	Migrations []migrate.Migration
	// DatabasePrefix is put before tenant.StorageName() in tenant database
	// names (database mode), so that several shards, or test runs, can share
	// one PostgreSQL server. At most 20 characters of a-z, 0-9 and '_'.
	DatabasePrefix string
	// Replica is the shard's read replica (replica.go): read-only
	// transactions that opt in (store.TxOptions.Replica) are served by it
	// when it is fresh enough. The zero value: no replica.
	Replica ReplicaOptions
}

// Backend hosts the tenants of one shard. It is safe for concurrent use.
type Backend struct {
	shard   Shard
	opts    Options
	serve   *pgxpool.Pool // serving role, shard database
	admin   *pgxpool.Pool // owner role, shard database
	role    string        // the serving role's name
	serveDB *pgxpool.Config
	adminDB *pgxpool.Config
	secret  string // the shard's secret setting name (seal.go), read or made at Open

	mu      sync.Mutex
	roleErr error              // the last CheckServingRole result; guarded by mu
	handles *handles.Set[*tdb] // open tenant database pools, bounded and LRU; guarded by mu

	// units holds a *unitState per schema or database unit used in this
	// process (see ensureCurrent), keyed by unitKey.
	units sync.Map

	replica *replica // nil without Options.Replica.URL
}

// Open connects to shard: a serving pool on Shard.URL and an admin pool on
// Shard.AdminURL. As admin it creates (or migrates) the shard's pooled
// schema "bulkhead" with its records table, row-level security and grants,
// and applies opts.Migrations to it. Then it checks the serving role; an
// unsafe role does not make Open fail (the caller decides, see
// CheckServingRole), but pooled tenants are refused while it is unsafe.
func Open(ctx context.Context, shard Shard, opts Options) (*Backend, error) {
	if shard.Name == "" || shard.URL == "" || shard.AdminURL == "" {
		return nil, errors.New("postgres: shard needs a name, a serving URL and an admin URL")
	}
	if opts.MaxOpenDatabases <= 0 {
		opts.MaxOpenDatabases = DefaultMaxOpenDatabases
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if err := validPrefix(opts.DatabasePrefix); err != nil {
		return nil, err
	}
	b := &Backend{shard: shard, opts: opts}
	b.handles = handles.New(&b.mu, make(map[tenant.ID]*tdb), handles.Config[*tdb]{
		Max:      opts.MaxOpenDatabases,
		Closed:   ErrClosed,
		Ref:      func(t *tdb) *handles.Ref { return &t.ref },
		Dropping: func(t *tdb) *bool { return &t.dropping },
		Close:    (*tdb).close,
	})
	var err error
	if b.serveDB, err = poolConfig(shard.URL, opts.MaxConns); err != nil {
		return nil, fmt.Errorf("postgres: shard %s serving URL: %w", shard.Name, err)
	}
	if b.adminDB, err = poolConfig(shard.AdminURL, opts.MaxConns); err != nil {
		return nil, fmt.Errorf("postgres: shard %s admin URL: %w", shard.Name, err)
	}
	b.serveDB.AfterConnect = prepareStatements
	if b.role, err = roleName(ctx, b.serveDB); err != nil {
		return nil, fmt.Errorf("postgres: shard %s: connect as serving role: %w", shard.Name, err)
	}
	if b.admin, err = pgxpool.NewWithConfig(ctx, b.adminDB); err != nil {
		return nil, fmt.Errorf("postgres: shard %s: %w", shard.Name, err)
	}
	if b.secret, err = ensureSecret(ctx, b.admin); err != nil {
		b.admin.Close()
		return nil, fmt.Errorf("postgres: shard %s: %w", shard.Name, err)
	}
	// No temporary objects for anyone but the owner: a temporary table
	// would shadow a tenant's table for the connection's next transaction.
	// Only the database's owner may revoke it; CheckServingRole reports a
	// serving role that still has it.
	if _, err := b.admin.Exec(ctx, `DO $$BEGIN EXECUTE 'REVOKE TEMPORARY ON DATABASE ' || quote_ident(current_database()) || ' FROM PUBLIC'; END$$`); err != nil && !isCode(err, "42501") {
		b.admin.Close()
		return nil, fmt.Errorf("postgres: shard %s: revoke temporary: %w", shard.Name, err)
	}
	if _, err := b.Apply(ctx, migrate.Unit{Shard: shard.Name, Mode: store.Pooled}, opts.Migrations); err != nil {
		b.admin.Close()
		return nil, fmt.Errorf("postgres: shard %s: set up pooled schema: %w", shard.Name, err)
	}
	if b.serve, err = pgxpool.NewWithConfig(ctx, b.serveDB); err != nil {
		b.admin.Close()
		return nil, fmt.Errorf("postgres: shard %s: %w", shard.Name, err)
	}
	if err := b.CheckServingRole(ctx); err != nil && !errors.Is(err, ErrUnsafeServingRole) {
		b.closePools()
		return nil, fmt.Errorf("postgres: shard %s: %w", shard.Name, err)
	}
	if opts.Replica.URL != "" {
		if b.replica, err = openReplica(ctx, b, opts.Replica); err != nil {
			b.closePools()
			return nil, err
		}
	}
	return b, nil
}

func poolConfig(url string, maxConns int32) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = time.Minute
	return cfg, nil
}

// roleName returns the name of the role cfg logs in as.
func roleName(ctx context.Context, cfg *pgxpool.Config) (string, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var name string
	err = conn.QueryRow(ctx, `SELECT current_user`).Scan(&name)
	return name, err
}

// prepareStatements prepares Bulkhead's statements for schema "bulkhead"
// on a new serving connection (see stmts.go). Prepared up front, they can
// be pipelined behind BEGIN and the tenant's seal in the batch that starts
// a transaction.
func prepareStatements(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, `SELECT pg_catalog.set_config('search_path', $1, false)`, unitPath(pooledSchema)); err != nil {
		return err
	}
	for _, q := range ownStatements {
		if _, err := conn.Prepare(ctx, stmtName(pooledSchema, q), qualify(pooledSchema, q)); err != nil {
			return fmt.Errorf("prepare statements: %w", err)
		}
		if foldedReads[q] {
			f := fold(q)
			if _, err := conn.Prepare(ctx, foldName(q), f); err != nil {
				return fmt.Errorf("prepare statements: %w", err)
			}
		}
	}
	_, err := conn.Exec(ctx, `RESET search_path`)
	return err
}

// ownStatements are the statements every serving connection prepares.
var ownStatements = append([]string{sqlGet, sqlInsert, sqlUpdateOne, sqlDelete, sqlCollections, sqlSeal, sqlSealStore,
	sqlBeginRW, sqlCommit, sqlUsageLock, sqlUsageGet, sqlUsageCount, sqlUsageInit, sqlUsageAdd,
	sqlPurge, sqlEventsAppend, sqlEvents, sqlEventsTrim, sqlEventOffset, sqlEventOffsetSet}, slices.Concat(listQueries, tokenListQueries)...)

func validPrefix(p string) error {
	if len(p) > 20 {
		return errors.New("postgres: DatabasePrefix is longer than 20 characters")
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return errors.New("postgres: DatabasePrefix may contain only a-z, 0-9 and '_'")
		}
	}
	return nil
}

// Name returns the shard's name.
func (b *Backend) Name() string { return b.shard.Name }

// OperatorPool returns the owner role's pool on the shard's main database,
// for operator code only: the catalog and the audit log keep their tables
// with it. It is not tenant-scoped: the owner owns every table and may turn
// row-level security off, so it must never reach a request handler or any
// code that runs a tenant's SQL (use Tx, ReadTx or the store.Router for
// those). It is closed by Close.
func (b *Backend) OperatorPool() *pgxpool.Pool { return b.admin }

// ServingRole returns the name of the role the serving pools log in as.
func (b *Backend) ServingRole() string { return b.role }

// Supports returns nil for all three modes, and an error wrapping
// store.ErrIsolationUnsupported for anything else.
func (b *Backend) Supports(mode store.Mode) error {
	switch mode {
	case store.Pooled, store.Schema, store.Database:
		return nil
	}
	return fmt.Errorf("%w: postgres does not support isolation %q (use pooled, schema or database)", store.ErrIsolationUnsupported, mode)
}

func (b *Backend) check(id tenant.ID, mode store.Mode) error {
	if id.IsZero() {
		return tenant.ErrMissing
	}
	if err := b.Supports(mode); err != nil {
		return err
	}
	if b.handles.Closed() {
		return ErrClosed
	}
	return nil
}

// dbName is tenant id's database name (database mode).
func (b *Backend) dbName(id tenant.ID) string { return b.opts.DatabasePrefix + id.StorageName() }

// unitSchema is the schema holding a tenant's tables in mode.
func unitSchema(id tenant.ID, mode store.Mode) string {
	if mode == store.Schema {
		return id.StorageName()
	}
	return pooledSchema
}

// Begin opens a transaction scoped to tenant id, sealed for the tenant and
// its unit (seal.go) in the round trip of its first statement. Pooled
// tenants are refused while the serving role is unsafe. The first Begin of
// a schema or database tenant in a process upgrades a unit that an earlier
// version of Bulkhead provisioned (see ensureCurrent).
func (b *Backend) Begin(ctx context.Context, id tenant.ID, mode store.Mode, write bool) (store.BackendTx, error) {
	return b.newTx(ctx, id, mode, write)
}

// pool returns the serving pool for tenant id in mode, after making sure
// the tenant's unit is current (ensureCurrent: before a tenant database's
// pool connects, which needs the unit's tables); release (never nil) must
// be called when the caller is done with it.
func (b *Backend) pool(ctx context.Context, id tenant.ID, mode store.Mode) (*pgxpool.Pool, func(), error) {
	if err := b.check(id, mode); err != nil {
		return nil, nil, err
	}
	if mode == store.Pooled || mode == store.Schema {
		b.mu.Lock()
		err := b.roleErr
		b.mu.Unlock()
		if err != nil {
			return nil, nil, fmt.Errorf("postgres: refusing %s tenant %s: %w", mode, id, err)
		}
	}
	switch mode {
	case store.Database:
		// Acquired first (pgxpool connects lazily), so that Drop waits for
		// the check rather than having its database held open by it.
		t, err := b.acquire(id)
		if err != nil {
			return nil, nil, err
		}
		if err := b.ensureCurrent(ctx, id, mode); err != nil {
			b.release(t)
			return nil, nil, err
		}
		return t.pool, func() { b.release(t) }, nil
	case store.Schema:
		if err := b.ensureCurrent(ctx, id, mode); err != nil {
			return nil, nil, err
		}
	}
	return b.serve, func() {}, nil
}

func (b *Backend) beginErr(id tenant.ID, mode store.Mode, err error) error {
	if isCode(err, "3D000") || isCode(err, "3F000") { // invalid_catalog_name, invalid_schema_name
		return fmt.Errorf("%w: tenant %s has no %s on shard %s (provision it first): %v", store.ErrUnknownTenant, id, mode, b.shard.Name, err)
	}
	return fmt.Errorf("postgres: begin: %w", err)
}

// BackendName implements store.BackendNamer: traces name the engine
// "postgresql".
func (b *Backend) BackendName() string { return "postgresql" }

// Ping reports whether the shard is reachable with both roles.
func (b *Backend) Ping(ctx context.Context) error {
	if b.handles.Closed() {
		return ErrClosed
	}
	if err := b.serve.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping shard %s: %w", b.shard.Name, err)
	}
	if err := b.admin.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping shard %s as admin: %w", b.shard.Name, err)
	}
	return nil
}

// Close closes every pool. Transactions in flight should be finished first.
func (b *Backend) Close() error {
	finish := b.handles.Close()
	if finish == nil {
		return nil // closed already
	}
	done := make(chan struct{})
	go func() {
		_ = finish() // waits for evicted pools, then closes the open ones
		b.closePools()
		close(done)
	}()
	select { // pgxpool waits for connections still in use
	case <-done:
		return nil
	case <-time.After(closeWait):
		return fmt.Errorf("postgres: shard %s: closed with transactions still in flight after %v; their connections close when they end", b.shard.Name, closeWait)
	}
}

// closeWait bounds how long Close waits for transactions in flight.
const closeWait = 10 * time.Second

func (b *Backend) closePools() {
	if b.replica != nil {
		b.replica.close()
	}
	b.serve.Close()
	b.admin.Close()
}

// lockKey is the advisory lock key of a unit's schema in a database.
func lockKey(db, schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("bulkhead\x00" + db + "\x00" + schema))
	return int64(h.Sum64())
}
