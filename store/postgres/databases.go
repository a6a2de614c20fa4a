package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/store/internal/handles"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// tdb is the serving pool of one tenant database (database mode).
type tdb struct {
	id   tenant.ID
	pool *pgxpool.Pool

	// Bookkeeping of Backend.handles, guarded by Backend.mu.
	ref      handles.Ref // users in flight, LRU position, drain and close signals
	dropping bool        // Drop refuses new users; written by the set only
}

// close closes t's pool, waiting for its connections in use to be released.
func (t *tdb) close() error {
	t.pool.Close()
	return nil
}

// acquire returns tenant id's pool, opening it if needed (pgxpool connects
// lazily), and counts a user of it; release undoes that. A pool with users
// is never closed by the LRU (see handles.Set).
func (b *Backend) acquire(id tenant.ID) (*tdb, error) {
	return b.handles.Acquire(id, func() (*tdb, error) {
		cfg := b.serveDB.Copy()
		cfg.ConnConfig.Database = b.dbName(id)
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			return nil, fmt.Errorf("postgres: open tenant database pool: %w", err)
		}
		return &tdb{id: id, pool: pool}, nil
	})
}

// release ends one use of t. When t becomes idle it goes to the front of the
// LRU list and, if more pools are open than allowed, the least recently
// used idle ones are closed.
func (b *Backend) release(t *tdb) { b.handles.Release(t) }

// OpenDatabases returns how many tenant database pools (database mode) are
// open right now. It is at most Options.MaxOpenDatabases, except while more
// tenants than that have transactions in flight.
func (b *Backend) OpenDatabases() int { return b.handles.Len() }

// dropDatabase waits until tenant id's pool is idle (refusing new users),
// closes it and drops the database, terminating any other session on it.
// The drop runs without the mutex (DROP DATABASE can take seconds), with
// the pool kept in the set as dropping so that new users are refused.
func (b *Backend) dropDatabase(ctx context.Context, id tenant.ID) error {
	err := b.handles.Drop(ctx, id, handles.Unlocked, func(t *tdb, open bool) error {
		if open {
			_ = t.close()
		}
		return b.dropDB(ctx, b.dbName(id))
	})
	var de *handles.DropError
	if errors.As(err, &de) {
		return fmt.Errorf("postgres: drop tenant database: %w", de.Err)
	}
	return err // nil, ErrClosed, or ctx's error while an evicted pool closed
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
