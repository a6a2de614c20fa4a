package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/internal/handles"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// handle is one open SQLite file: a single-connection write pool whose
// transactions begin IMMEDIATE, and a query-only read pool. Connections
// open lazily and cache their prepared statements (see cachingConn).
type handle struct {
	id    tenant.ID // zero for the pooled database
	write *sql.DB
	read  *sql.DB

	// Bookkeeping of Backend.handles, guarded by Backend.mu (unused for the
	// pooled handle, which is not in the set).
	ref      handles.Ref // users in flight, LRU position, drain and close signals
	dropping bool        // Drop refuses new users; written by the set only, read by tests
}

// dsn returns the URI that opens path with the backend's pragmas: WAL,
// synchronous=FULL, busy_timeout and foreign keys on every connection;
// BEGIN IMMEDIATE on the writer; query_only on readers; SQLite's defensive
// mode on all. create allows the
// writer to create the file; otherwise a missing file fails to open.
func dsn(path string, write, create bool, busy time.Duration) string {
	q := url.Values{}
	q.Set("_defensive", "1") // writable_schema and the like cannot corrupt the file
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	if write {
		// A new file gets 8 KiB pages, set before WAL mode fixes the page
		// size (the driver runs the _pragma list, then _journal_mode): a
		// sealed record of 1 KiB of data (an envelope of about 1.5 KiB)
		// then fits in its b-tree page, where 4 KiB pages (at most about
		// 1,000 bytes of a row in the page) push it to an overflow page
		// read separately. An existing file keeps its page size.
		q.Add("_pragma", "page_size(8192)")
		q.Set("_journal_mode", "WAL")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	mode := "rw"
	if create && write {
		mode = "rwc"
	}
	q.Set("mode", mode)
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

// pooledReaders is the read pool size of the shared pooled file.
func pooledReaders() int { return max(4, runtime.GOMAXPROCS(0)) }

// tenantReaders is the read pool size of one tenant file.
const tenantReaders = 4

// newHandle returns a handle on path. It opens no connection yet.
func newHandle(id tenant.ID, path string, create bool, busy time.Duration, readers int) *handle {
	w := sql.OpenDB(connector{dsn(path, true, create, busy)})
	w.SetMaxOpenConns(1) // one writer per file
	w.SetMaxIdleConns(1)
	r := sql.OpenDB(connector{dsn(path, false, false, busy)})
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(min(readers, 2))
	return &handle{id: id, write: w, read: r}
}

// createSchema creates the records and usage tables if they do not exist; it also
// puts a new file in WAL mode (the writer's DSN does).
func (h *handle) createSchema(ctx context.Context) error {
	for _, q := range []string{sqlSchema, sqlUsageSchema, sqlEventsSchema, sqlOffsetsSchema} {
		if _, err := h.write.ExecContext(own(ctx), q); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	return nil
}

// begin opens a transaction on the writer or a reader; a guarded one (see
// guard.go) if ctx is marked by guarded.
func (h *handle) begin(ctx context.Context, id tenant.ID, write bool) (*tx, error) {
	db := h.read
	if write {
		db = h.write
	}
	sqlTx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: begin: %w", err)
	}
	return &tx{tx: sqlTx, tenant: id.String(), h: h, write: write}, nil
}

// close closes both pools.
func (h *handle) close() error {
	return errors.Join(h.read.Close(), h.write.Close())
}

// acquire returns tenant id's open handle, opening its file if needed, and
// counts a user of it; release undoes that. A handle with users is never
// closed by the LRU (see handles.Set).
func (b *Backend) acquire(id tenant.ID) (*handle, error) {
	return b.handles.Acquire(id, func() (*handle, error) {
		// With mu held: Drop removes files under it, so the file checked
		// here is the file opened.
		name := fileName(id)
		if !filepath.IsLocal(name) { // cannot happen with StorageName; defence in depth
			return nil, fmt.Errorf("sqlite: tenant database name %q is not local", name)
		}
		if err := b.checkFile(name); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%w: tenant %s has no database file (provision it first)", store.ErrUnknownTenant, id)
			}
			return nil, fmt.Errorf("sqlite: open tenant database: %w", err)
		}
		return newHandle(id, filepath.Join(b.dir, "tenants", name), false, b.opts.BusyTimeout, tenantReaders), nil
	})
}

// release ends one use of h. When h becomes idle it goes to the front of the
// LRU list and, if more files are open than allowed, the least recently
// used idle ones are closed.
func (b *Backend) release(h *handle) { b.handles.Release(h) }
