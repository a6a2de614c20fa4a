package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/internal/handles"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Read replicas.
//
// A shard may have one streaming replica (ReplicaOptions.URL). Read-only
// transactions that opted in (store.TxOptions.Replica) are served by it,
// through serving pools of its own (the shard database, and one pool per
// tenant database, LRU-bounded like the primary's), when
//
//   - the replica answers, is in recovery (a promoted replica has left the
//     primary's history) and logs in as the serving role, whose safety
//     CheckServingRole checks on the primary: roles, policies, the sealing
//     functions and the secret setting's name are replicated, so row-level
//     security and the seal hold there exactly as on the primary;
//   - it is not lagging: a poller samples the primary's WAL position and
//     the replica's replay position every PollInterval; the replica lags by
//     the age of the oldest primary position it has not replayed, and more
//     than MaxLag sends reads to the primary;
//   - it has replayed the read's read-after position (a commit token): the
//     position is compared with the replay position the poller saw last,
//     and only if that is behind is the replica asked again, on the
//     connection that then serves the read, before the read runs.
//
// Otherwise the primary serves the read. A read that fails on the replica
// (a tenant database or table the replica has not replayed yet, a query
// cancelled by replay) runs again on the primary. Nothing is ever written,
// created or migrated on the replica: it is read-only, and every DDL
// reaches it by replication.

// Defaults for ReplicaOptions.
const (
	DefaultReplicaMaxLag       = 5 * time.Second
	DefaultReplicaPollInterval = 100 * time.Millisecond
)

// ReplicaOptions configures a shard's read replica.
type ReplicaOptions struct {
	// URL is the replica's serving URL: the shard's serving role on the
	// replica server (a streaming replica of the shard's server, so tenant
	// databases exist there too). Empty: no replica.
	URL string
	// MaxLag is how far behind the primary the replica may be and still
	// serve reads without a read-after token. Default 5 s.
	MaxLag time.Duration
	// PollInterval is how often the replica's replay position and lag are
	// sampled. Default 100 ms.
	PollInterval time.Duration
	// Metrics counts who served each read that opted in to the replica,
	// and why. Nil: the backend keeps its own, unregistered (see
	// Backend.ReplicaMetrics).
	Metrics *ReplicaMetrics
	// Logger reports the replica becoming unusable and usable again. Nil:
	// slog.Default().
	Logger *slog.Logger
}

// Why a read that opted in to the replica was served where it was.
const (
	ReasonFresh       = "fresh"       // the replica served it: not lagging, read-after position replayed
	ReasonTokenAhead  = "token_ahead" // the primary: the replica had not replayed the read-after position
	ReasonLagging     = "lagging"     // the primary: the replica lags more than MaxLag
	ReasonUnreachable = "unreachable" // the primary: the replica does not answer or is not usable
	ReasonError       = "error"       // the primary: the read failed on the replica and ran again
	ReasonNewTenant   = "new_tenant"  // the primary: the tenant's incarnation is younger than the replica can vouch for
)

// incarnationSlack is added to a replica's lag and poll interval before it
// may serve a tenant created (or created again) that long ago: clock skew
// between the instance that created the tenant and this one.
const incarnationSlack = time.Second

// replica is a shard's read replica and what the poller knows of it.
type replica struct {
	b       *Backend
	opts    ReplicaOptions
	serveDB *pgxpool.Config
	serve   *pgxpool.Pool
	log     *slog.Logger

	mu      sync.Mutex
	handles *handles.Set[*tdb] // the replica's tenant database pools; guarded by mu

	replay atomic.Uint64 // the highest replay position seen

	state   sync.Mutex
	usable  bool        // guarded by state: the last poll succeeded and the replica may serve
	why     string      // guarded by state: why it may not, for the log
	pending []walSample // guarded by state: primary positions not yet replayed, oldest first
	sampled time.Time   // guarded by state: when the primary's position was last read

	stop chan struct{}
	done chan struct{}
}

// walSample is the primary's WAL position at a time.
type walSample struct {
	at  time.Time
	pos uint64
}

// maxSamples bounds the unreplayed positions kept while a replica stalls;
// beyond it the middle ones are dropped (the oldest decides the lag).
const maxSamples = 4096

// openReplica prepares b's replica and polls it once; an unreachable
// replica does not fail Open (reads go to the primary until it answers).
func openReplica(ctx context.Context, b *Backend, opts ReplicaOptions) (*replica, error) {
	if opts.MaxLag <= 0 {
		opts.MaxLag = DefaultReplicaMaxLag
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultReplicaPollInterval
	}
	if opts.Metrics == nil {
		opts.Metrics = NewReplicaMetrics()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg, err := poolConfig(opts.URL, b.opts.MaxConns)
	if err != nil {
		return nil, fmt.Errorf("postgres: shard %s replica URL: %w", b.shard.Name, err)
	}
	cfg.AfterConnect = prepareStatements
	r := &replica{b: b, opts: opts, serveDB: cfg, log: opts.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	if r.serve, err = pgxpool.NewWithConfig(ctx, cfg); err != nil { // connects lazily
		return nil, fmt.Errorf("postgres: shard %s replica: %w", b.shard.Name, err)
	}
	r.handles = handles.New(&r.mu, make(map[tenant.ID]*tdb), handles.Config[*tdb]{
		Max:      b.opts.MaxOpenDatabases,
		Closed:   ErrClosed,
		Ref:      func(t *tdb) *handles.Ref { return &t.ref },
		Dropping: func(t *tdb) *bool { return &t.dropping },
		Close:    (*tdb).close,
	})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	r.poll(pctx)
	cancel()
	go r.run()
	return r, nil
}

// run polls until close.
func (r *replica) run() {
	defer close(r.done)
	tick := time.NewTicker(r.opts.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), r.opts.PollInterval+2*time.Second)
			r.poll(ctx)
			cancel()
		}
	}
}

// poll samples the primary's WAL position, then the replica's replay
// position, and updates what reads decide on.
func (r *replica) poll(ctx context.Context) {
	now := time.Now()
	var primary uint64
	perr := r.b.admin.QueryRow(ctx, `SELECT pg_catalog.pg_current_wal_lsn()::text`).Scan(lsnScanner{&primary})
	var user string
	var recovery bool
	var replay uint64
	err := r.serve.QueryRow(ctx, `SELECT current_user::text, pg_catalog.pg_is_in_recovery(), pg_catalog.pg_last_wal_replay_lsn()::text`).
		Scan(&user, &recovery, lsnScanner{&replay})
	why := ""
	switch {
	case err != nil:
		why = "does not answer: " + err.Error()
	case !recovery:
		why = "is not in recovery (promoted, or not a replica): it may not have the primary's writes"
	case user != r.b.role:
		why = fmt.Sprintf("logs in as %q, not the serving role %q (row-level security holds only for the serving role)", user, r.b.role)
	}
	if why == "" {
		r.observeReplay(replay)
	}
	r.state.Lock()
	defer r.state.Unlock()
	if perr == nil {
		r.sampled = now
		if n := len(r.pending); n == 0 || r.pending[n-1].pos < primary {
			if n == maxSamples {
				r.pending = append(r.pending[:1], r.pending[2:]...)
			}
			r.pending = append(r.pending, walSample{at: now, pos: primary})
		}
	}
	rp := r.replay.Load()
	i := 0
	for i < len(r.pending) && r.pending[i].pos <= rp {
		i++
	}
	r.pending = r.pending[i:]
	if usable := why == ""; usable != r.usable || why != r.why {
		if usable {
			r.log.Info("postgres: read replica usable", "shard", r.b.shard.Name)
		} else if r.usable || r.why == "" {
			r.log.Warn("postgres: read replica not usable; reads go to the primary", "shard", r.b.shard.Name, "reason", why)
		}
		r.usable, r.why = usable, why
	}
}

// observeReplay raises the known replay position to pos.
func (r *replica) observeReplay(pos uint64) {
	for {
		cur := r.replay.Load()
		if pos <= cur || r.replay.CompareAndSwap(cur, pos) {
			return
		}
	}
}

// lag returns how far behind the primary the replica is, as of now: the
// age of the oldest primary position it had not replayed at the last poll.
func (r *replica) lag(now time.Time) time.Duration {
	r.state.Lock()
	defer r.state.Unlock()
	if len(r.pending) == 0 {
		return 0
	}
	return now.Sub(r.pending[0].at)
}

// route decides who serves read: "" (the replica, if it has replayed
// read.After, which the caller checks when cachedBehind) or the reason the
// primary serves it.
//
// A tenant id deleted and created again is a new tenant, and a replica
// that has not replayed the deletion still holds the old one's rows. The
// deletion committed before the new incarnation began, and the poller read
// the primary's position at most a poll interval later; every position
// read more than lag ago is replayed. So an incarnation older than lag,
// the poll interval and incarnationSlack is complete on the replica.
func (r *replica) route(read store.ReplicaRead) (reason string, cachedBehind bool) {
	now := time.Now()
	r.state.Lock()
	usable, sampled := r.usable, r.sampled
	r.state.Unlock()
	if !usable {
		return ReasonUnreachable, false
	}
	lag := r.lag(now)
	// Without a recent sample of the primary the lag is not known.
	if lag > r.opts.MaxLag || now.Sub(sampled) > 3*r.opts.PollInterval+2*time.Second {
		return ReasonLagging, false
	}
	if read.Age < 0 || read.Age <= lag+r.opts.PollInterval+incarnationSlack {
		return ReasonNewTenant, false
	}
	return "", read.After > r.replay.Load()
}

// pool returns the replica's serving pool for tenant id in mode; release
// (never nil) must be called when the caller is done with it.
func (r *replica) pool(id tenant.ID, mode store.Mode) (*pgxpool.Pool, func(), error) {
	if mode != store.Database {
		return r.serve, func() {}, nil
	}
	t, err := r.handles.Acquire(id, func() (*tdb, error) {
		cfg := r.serveDB.Copy()
		cfg.ConnConfig.Database = r.b.dbName(id)
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			return nil, fmt.Errorf("postgres: open replica tenant database pool: %w", err)
		}
		return &tdb{id: id, pool: pool}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return t.pool, func() { r.handles.Release(t) }, nil
}

// forget closes tenant id's replica database pool (its database is being
// dropped on the primary), waiting for its reads in flight.
func (r *replica) forget(ctx context.Context, id tenant.ID) error {
	err := r.handles.Drop(ctx, id, handles.Unlocked, func(t *tdb, open bool) error {
		if open {
			_ = t.close()
		}
		return nil
	})
	var de *handles.DropError
	if errors.As(err, &de) {
		return fmt.Errorf("postgres: close replica tenant database pool: %w", de.Err)
	}
	return err
}

// close stops the poller and closes every pool.
func (r *replica) close() {
	close(r.stop)
	<-r.done
	if finish := r.handles.Close(); finish != nil {
		_ = finish()
	}
	r.serve.Close()
}

// ReplicaLag returns how far the shard's replica is behind its primary, as
// of the last poll, and whether the replica is usable (answers, in
// recovery, as the serving role). ok is false for a shard without one.
func (b *Backend) ReplicaLag() (lag time.Duration, usable, ok bool) {
	if b.replica == nil {
		return 0, false, false
	}
	r := b.replica
	r.state.Lock()
	usable = r.usable
	r.state.Unlock()
	return r.lag(time.Now()), usable, true
}

// ReplicaMetrics returns the counters of the shard's replica reads (nil
// without a replica).
func (b *Backend) ReplicaMetrics() *ReplicaMetrics {
	if b.replica == nil {
		return nil
	}
	return b.replica.opts.Metrics
}
