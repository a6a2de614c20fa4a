package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/datadir"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/internal/handles"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var _ store.Backend = (*Backend)(nil)

// ErrClosed reports use of a Backend after Close.
var ErrClosed = errors.New("sqlite backend is closed")

// Defaults for Options.
const (
	DefaultMaxOpenDatabases = 256
	DefaultBusyTimeout      = 5 * time.Second
)

// Options configures a Backend. The zero value uses the defaults.
type Options struct {
	// MaxOpenDatabases bounds the tenant database files (database mode) kept
	// open; idle ones are closed least recently used first. A file with a
	// transaction in flight is never closed, so while more than this many
	// tenants have transactions in flight at once the bound is exceeded
	// until they finish. Default 256.
	MaxOpenDatabases int
	// BusyTimeout is how long a statement waits for a lock another
	// connection holds before failing. Default 5s.
	BusyTimeout time.Duration
	// Migrations are the team's own SQL migrations. Provision applies them
	// to every new database-mode tenant in the transaction that creates
	// its file, so the tenant appears migrated or not at all; existing
	// tenants get them from Apply (the fleet runner in package migrate).
	Migrations []migrate.Migration
}

// Backend hosts tenants in SQLite files under one directory. It is safe for
// concurrent use.
type Backend struct {
	dir    string
	opts   Options
	root   *os.Root      // <dir>/tenants; every tenant file is created and removed through it
	lock   *datadir.Lock // <dir>/bulkhead.lock, locked exclusively while the Backend is open
	pooled *handle       // <dir>/pooled.db, open for the Backend's lifetime

	// mu guards handles, and makes the backend's own steps on a tenant's
	// file (create, check, remove) atomic with the set's.
	mu      sync.Mutex
	handles *handles.Set[*handle] // the open tenant databases, bounded and LRU
	// dbs is the set's map of open tenant databases, shared with it so that
	// it can be read with mu held (the tests do); only the set writes it.
	dbs map[tenant.ID]*handle
}

// Open opens (creating if needed, mode 0700) the data directory dir and its
// pooled database. Tenant databases are opened lazily.
//
// One process owns a data directory: Open takes an exclusive lock on
// <dir>/bulkhead.lock, held until Close, and fails with an error wrapping
// ErrLocked while another Backend (in any process) holds it.
func Open(dir string, opts Options) (*Backend, error) {
	if opts.MaxOpenDatabases <= 0 {
		opts.MaxOpenDatabases = DefaultMaxOpenDatabases
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("sqlite: data dir: %w", err)
	}
	tenants := filepath.Join(abs, "tenants")
	if err := os.MkdirAll(tenants, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create data dir: %w", err)
	}
	lock, err := lockDir(abs)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(tenants)
	if err != nil {
		_ = lock.Release()
		return nil, fmt.Errorf("sqlite: open tenants dir: %w", err)
	}
	b := &Backend{
		dir:  abs,
		opts: opts,
		root: root,
		lock: lock,
		dbs:  make(map[tenant.ID]*handle),
	}
	b.handles = handles.New(&b.mu, b.dbs, handles.Config[*handle]{
		Max:      opts.MaxOpenDatabases,
		Closed:   ErrClosed,
		Ref:      func(h *handle) *handles.Ref { return &h.ref },
		Dropping: func(h *handle) *bool { return &h.dropping },
		Close:    (*handle).close,
	})
	// Create the file 0600 before SQLite does (it would use 0644, and its
	// -wal and -shm files copy the database file's mode).
	pooledPath := filepath.Join(abs, "pooled.db")
	f, err := os.OpenFile(pooledPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		_ = root.Close()
		_ = lock.Release()
		return nil, fmt.Errorf("sqlite: create pooled database: %w", err)
	}
	_ = f.Close()
	b.pooled = newHandle(tenant.ID{}, pooledPath, true, opts.BusyTimeout, pooledReaders())
	if err := b.pooled.createSchema(context.Background()); err != nil {
		_ = b.pooled.close()
		_ = root.Close()
		_ = lock.Release()
		return nil, fmt.Errorf("sqlite: open pooled database: %w", err)
	}
	return b, nil
}

// Supports returns nil for store.Pooled and store.Database, and an error
// wrapping store.ErrIsolationUnsupported for anything else.
func (b *Backend) Supports(mode store.Mode) error {
	switch mode {
	case store.Pooled, store.Database:
		return nil
	case store.Schema:
		return fmt.Errorf("%w: sqlite does not support isolation %q (it needs PostgreSQL; use pooled or database)",
			store.ErrIsolationUnsupported, mode)
	}
	return fmt.Errorf("%w: sqlite does not support isolation %q (use pooled or database)", store.ErrIsolationUnsupported, mode)
}

// Provision prepares storage for tenant id. In pooled mode there is nothing
// to prepare; in database mode it creates the tenant's file with
// Bulkhead's tables and applies Options.Migrations, in one transaction
// (see Apply for the version bookkeeping). It is idempotent.
func (b *Backend) Provision(ctx context.Context, id tenant.ID, mode store.Mode) error {
	if err := b.check(id, mode); err != nil {
		return err
	}
	if mode == store.Pooled {
		return nil
	}
	return b.provisionDatabase(ctx, id)
}

// createFile creates the tenant's database file through the tenants root,
// so its name cannot leave <dir>/tenants, and checks that it is a regular
// file (not, say, a symlink planted in the data directory). It reports
// whether it created the file.
func (b *Backend) createFile(id tenant.ID) (bool, error) {
	name := fileName(id)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.handles.ClosedLocked() {
		return false, ErrClosed
	}
	if b.handles.DroppingLocked(id) {
		return false, fmt.Errorf("sqlite: tenant %s database is being dropped; provision it again when the drop is done", id)
	}
	created := true
	f, err := b.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		created = false
		f, err = b.root.OpenFile(name, os.O_RDWR, 0o600)
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: create tenant database: %w", err)
	}
	if err := f.Close(); err != nil {
		return created, fmt.Errorf("sqlite: create tenant database: %w", err)
	}
	return created, b.checkFile(name)
}

// checkFile reports whether name is a regular file in the tenants root.
func (b *Backend) checkFile(name string) error {
	fi, err := b.root.Lstat(name)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("sqlite: tenant database %s is not a regular file (remove it from the data directory)", name)
	}
	return nil
}

// Drop removes all of tenant id's data: its rows in pooled mode, its
// database file (with -wal and -shm) in database mode. In database mode it
// waits for the tenant's transactions in flight to finish (or ctx to end),
// and meanwhile refuses new ones. It is idempotent.
func (b *Backend) Drop(ctx context.Context, id tenant.ID, mode store.Mode) error {
	if err := b.check(id, mode); err != nil {
		return err
	}
	if mode == store.Pooled {
		tx, err := b.pooled.write.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlite: drop tenant rows: %w", err)
		}
		defer func() { _ = tx.Rollback() }()
		for _, q := range []string{sqlDropTenant, sqlDropUsage, sqlDropEvents, sqlDropOffsets} {
			if _, err := tx.ExecContext(own(ctx), q, id.String()); err != nil {
				return fmt.Errorf("sqlite: drop tenant rows: %w", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite: drop tenant rows: %w", err)
		}
		return nil
	}
	// A handle evicted a moment ago may still be closing; closing its last
	// connection deletes "-wal" by name, so the set waits for it before
	// the files are removed (and before the name can be reused by a new
	// Provision). The files go with mu held, so nobody reopens or
	// re-creates the file while it goes.
	err := b.handles.Drop(ctx, id, handles.Locked, func(h *handle, open bool) error {
		var errs []error
		if open {
			errs = append(errs, h.close())
		}
		name := fileName(id)
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			if err := b.root.Remove(name + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
	var de *handles.DropError
	if errors.As(err, &de) {
		return fmt.Errorf("sqlite: drop tenant database: %w", de.Err)
	}
	return err // nil, ErrClosed, or ctx's error while an evicted handle closed
}

// Begin opens a transaction scoped to tenant id. Read-only transactions
// (write false) run on the file's reader pool, concurrently with its writer.
func (b *Backend) Begin(ctx context.Context, id tenant.ID, mode store.Mode, write bool) (store.BackendTx, error) {
	if err := b.check(id, mode); err != nil {
		return nil, err
	}
	h := b.pooled
	if mode == store.Database {
		var err error
		if h, err = b.acquire(id); err != nil {
			return nil, err
		}
	}
	t, err := h.begin(ctx, id, write)
	if err != nil {
		if mode == store.Database {
			b.release(h)
		}
		return nil, err
	}
	if mode == store.Database {
		t.release = b.release
	}
	return t, nil
}

func (b *Backend) check(id tenant.ID, mode store.Mode) error {
	if id.IsZero() {
		return tenant.ErrMissing
	}
	return b.Supports(mode)
}

// BackendName implements store.BackendNamer: traces name the engine
// "sqlite".
func (b *Backend) BackendName() string { return "sqlite" }

// Ping reports whether the pooled database and the tenants directory are
// reachable.
func (b *Backend) Ping(ctx context.Context) error {
	if b.handles.Closed() {
		return ErrClosed
	}
	if err := b.pooled.read.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping pooled database: %w", err)
	}
	if _, err := b.root.Stat("."); err != nil {
		return fmt.Errorf("sqlite: tenants dir: %w", err)
	}
	return nil
}

// Close closes every database the backend has open. Transactions in flight
// should be finished first; Close does not wait for them.
func (b *Backend) Close() error {
	finish := b.handles.Close()
	if finish == nil {
		return nil // closed already
	}
	// finish waits for evicted handles still closing, then closes the open ones.
	return errors.Join(finish(), b.pooled.close(), b.root.Close(), b.lock.Release())
}

// OpenDatabases returns how many tenant database files (database mode) are
// open right now. It is at most Options.MaxOpenDatabases, except while more
// tenants than that have transactions in flight.
func (b *Backend) OpenDatabases() int { return b.handles.Len() }

// Dir returns the absolute data directory.
func (b *Backend) Dir() string { return b.dir }

// fileName is the tenant's database file name inside <dir>/tenants.
func fileName(id tenant.ID) string { return id.StorageName() + ".db" }
