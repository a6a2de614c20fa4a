package postgres

import (
	"container/list"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// tdb is the serving pool of one tenant database (database mode).
type tdb struct {
	id   tenant.ID
	pool *pgxpool.Pool

	// Guarded by Backend.mu.
	refs     int           // transactions in flight
	elem     *list.Element // position in Backend.idle while refs == 0
	dropping bool          // Drop is waiting for refs to reach 0
	drained  chan struct{} // closed when refs reaches 0, for Drop

	closed chan struct{} // closed once an evicted pool is fully closed
}

// openPool returns tenant id's open pool, if any.
func (b *Backend) openPool(id tenant.ID) *tdb {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dbs[id]
}

// acquire returns tenant id's pool, opening it if needed (pgxpool connects
// lazily), and counts a user of it; release undoes that. A pool with users
// is never closed by the LRU.
func (b *Backend) acquire(id tenant.ID) (*tdb, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if t := b.dbs[id]; t != nil {
		defer b.mu.Unlock()
		if t.dropping {
			return nil, fmt.Errorf("%w: tenant %s database is being dropped", store.ErrUnknownTenant, id)
		}
		t.refs++
		if t.elem != nil {
			b.idle.Remove(t.elem)
			t.elem = nil
		}
		return t, nil
	}
	var evicted []*tdb
	for len(b.dbs) >= b.opts.MaxOpenDatabases && b.idle.Len() > 0 {
		evicted = append(evicted, b.evictLocked(b.idle.Back().Value.(*tdb)))
	}
	cfg := b.serveDB.Copy()
	cfg.ConnConfig.Database = b.dbName(id)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.mu.Unlock()
		b.closeEvicted(evicted)
		return nil, fmt.Errorf("postgres: open tenant database pool: %w", err)
	}
	t := &tdb{id: id, pool: pool, refs: 1, closed: make(chan struct{})}
	b.dbs[id] = t
	b.mu.Unlock()
	b.closeEvicted(evicted)
	return t, nil
}

// release ends one use of t. When t becomes idle it goes to the front of the
// LRU list and, if more pools are open than allowed, the least recently
// used idle ones are closed.
func (b *Backend) release(t *tdb) {
	b.mu.Lock()
	t.refs--
	if t.refs > 0 {
		b.mu.Unlock()
		return
	}
	if t.drained != nil {
		close(t.drained)
		t.drained = nil
	}
	var evicted []*tdb
	if !b.closed && b.dbs[t.id] == t && !t.dropping {
		t.elem = b.idle.PushFront(t)
		for len(b.dbs) > b.opts.MaxOpenDatabases && b.idle.Len() > 0 {
			evicted = append(evicted, b.evictLocked(b.idle.Back().Value.(*tdb)))
		}
	}
	b.mu.Unlock()
	b.closeEvicted(evicted)
}

// forget removes t from the open set; the caller closes it. Called with mu held.
func (b *Backend) forget(t *tdb) {
	if b.dbs[t.id] == t {
		delete(b.dbs, t.id)
	}
	if t.elem != nil {
		b.idle.Remove(t.elem)
		t.elem = nil
	}
}

// evictLocked forgets idle pool t and registers it as closing. Called with
// mu held and the backend open.
func (b *Backend) evictLocked(t *tdb) *tdb {
	b.forget(t)
	b.closing[t] = struct{}{}
	b.wg.Add(1)
	return t
}

// closeEvicted closes pools evicted by evictLocked, off the caller's path.
func (b *Backend) closeEvicted(ts []*tdb) {
	for _, t := range ts {
		go func() {
			defer b.wg.Done()
			t.pool.Close()
			b.mu.Lock()
			delete(b.closing, t)
			b.mu.Unlock()
			close(t.closed)
		}()
	}
}

// OpenDatabases returns how many tenant database pools (database mode) are
// open right now. It is at most Options.MaxOpenDatabases, except while more
// tenants than that have transactions in flight.
func (b *Backend) OpenDatabases() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.dbs)
}

// dropDatabase waits until tenant id's pool is idle (refusing new users),
// closes it and drops the database, terminating any other session on it.
func (b *Backend) dropDatabase(ctx context.Context, id tenant.ID) error {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return ErrClosed
		}
		var closing *tdb
		for t := range b.closing {
			if t.id == id {
				closing = t
			}
		}
		if closing != nil {
			b.mu.Unlock()
			if err := wait(ctx, closing.closed); err != nil {
				return err
			}
			continue
		}
		t := b.dbs[id]
		if t != nil && t.refs > 0 {
			t.dropping = true
			if t.drained == nil {
				t.drained = make(chan struct{})
			}
			drained := t.drained
			b.mu.Unlock()
			if err := wait(ctx, drained); err != nil {
				b.mu.Lock()
				t.dropping = false
				if t.refs == 0 && t.elem == nil && b.dbs[id] == t {
					t.elem = b.idle.PushFront(t)
				}
				b.mu.Unlock()
				return fmt.Errorf("postgres: drop tenant database: %w", err)
			}
			continue
		}
		if t != nil {
			t.dropping = true // refuse new users until the database is gone
		}
		b.mu.Unlock()
		if t != nil {
			t.pool.Close()
		}
		err := b.dropDB(ctx, b.dbName(id))
		if t != nil {
			b.mu.Lock()
			b.forget(t)
			b.mu.Unlock()
		}
		if err != nil {
			return fmt.Errorf("postgres: drop tenant database: %w", err)
		}
		return nil
	}
}

func wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dropDB drops database name. Sessions still open on it (another server's
// pool) make a plain DROP DATABASE fail after a few seconds; then it is
// retried WITH (FORCE), which terminates them if the owner role may signal
// them (membership in pg_signal_backend).
func (b *Backend) dropDB(ctx context.Context, name string) error {
	_, err := b.admin.Exec(ctx, `DROP DATABASE IF EXISTS `+ident(name))
	if !isCode(err, "55006") { // object_in_use
		return err
	}
	_, err = b.admin.Exec(ctx, `DROP DATABASE IF EXISTS `+ident(name)+` WITH (FORCE)`)
	if isCode(err, "42501") {
		return fmt.Errorf("%w (other sessions are using the tenant database; GRANT pg_signal_backend TO the owner role so that Drop can end them)", err)
	}
	return err
}
