package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Defaults of a Trimmer.
const (
	// DefaultMaxAge is how long an event is kept.
	DefaultMaxAge = 7 * 24 * time.Hour
	// DefaultMaxCount is how many of a tenant's newest events are kept.
	DefaultMaxCount = 100_000
	// DefaultTrimInterval is the pause between two trimming runs.
	DefaultTrimInterval = time.Minute
	// DefaultTrimBatch is the most events one transaction deletes.
	DefaultTrimBatch = 1000
	// DefaultTrimPerRun is the most events one run deletes of one tenant.
	DefaultTrimPerRun = 100_000
)

// TrimOptions configures NewTrimmer.
type TrimOptions struct {
	// Tenants lists the tenants to trim; required.
	Tenants Tenants
	// Store runs each tenant's trim transactions; required.
	Store Runner
	// MaxAge: events older than this are deleted. 0 keeps events of any
	// age (only MaxCount bounds them).
	MaxAge time.Duration
	// MaxCount: a tenant's events beyond its newest MaxCount are deleted.
	// 0 keeps any number (only MaxAge bounds them).
	MaxCount int
	// BatchSize bounds the events one transaction deletes (default
	// DefaultTrimBatch).
	BatchSize int
	// MaxPerRun bounds the events one run deletes of one tenant (default
	// DefaultTrimPerRun); the next run goes on.
	MaxPerRun int
	// Now is the clock the age cutoff is computed from (time.Now if nil).
	Now func() time.Time
	// Metrics counts the trims (nil: not counted).
	Metrics *TrimMetrics
	// Logger receives failed trims (nil: discarded).
	Logger *slog.Logger
}

// Trimmer deletes tenants' old events. Each run visits the serving tenants
// round-robin: in each round every tenant that still has events to trim
// gets one transaction deleting at most BatchSize of them (oldest first),
// in a context naming that tenant alone, until it has none left or has
// lost MaxPerRun; so a tenant with millions of events to trim costs the
// others one bounded transaction per round. Each run starts the rotation
// one tenant further along. It is safe for concurrent use; runs do not
// overlap.
type Trimmer struct {
	opts TrimOptions
	log  *slog.Logger
	mu   sync.Mutex // held by a run
	runs int        // guarded by mu: where the rotation starts
}

// NewTrimmer returns a Trimmer for opts.
func NewTrimmer(opts TrimOptions) (*Trimmer, error) {
	if opts.Tenants == nil || opts.Store == nil {
		return nil, errors.New("outbox: TrimOptions.Tenants and TrimOptions.Store are required")
	}
	if opts.MaxAge < 0 || opts.MaxCount < 0 {
		return nil, fmt.Errorf("outbox: MaxAge (%s) and MaxCount (%d) must not be negative (0: no bound)", opts.MaxAge, opts.MaxCount)
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultTrimBatch
	}
	if opts.MaxPerRun == 0 {
		opts.MaxPerRun = DefaultTrimPerRun
	}
	if opts.BatchSize < 1 || opts.MaxPerRun < 1 {
		return nil, errors.New("outbox: BatchSize and MaxPerRun must be at least 1")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Trimmer{opts: opts, log: log}, nil
}

// Trimmed is what a run trimmed of one tenant. Err ended the tenant's
// part of the run early, if set; what it trimmed before stays trimmed.
type Trimmed struct {
	Tenant tenant.ID
	Events int64
	Err    error
}

// Run trims at once and then every interval after the end of the previous
// run, until ctx is done. An interval of 0 or less, or a Trimmer with
// neither MaxAge nor MaxCount, does nothing: Run returns at once.
func (t *Trimmer) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 || (t.opts.MaxAge == 0 && t.opts.MaxCount == 0) {
		return
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if _, err := t.Trim(ctx); err != nil && ctx.Err() == nil {
			t.log.Warn("outbox trim failed", slog.String("error", err.Error()))
		}
		timer.Reset(interval)
	}
}

// Trim runs once and returns what it trimmed of each serving tenant. Its
// error says the tenants could not be listed or some failed (their
// Trimmed.Err); the others were trimmed all the same. Tenants on a backend
// without an outbox, and tenants offboarded meanwhile, are skipped.
func (t *Trimmer) Trim(ctx context.Context) ([]Trimmed, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids, err := t.opts.Tenants.ServingTenants(ctx)
	if err != nil {
		t.opts.Metrics.run(false)
		return nil, fmt.Errorf("outbox: list tenants to trim: %w", err)
	}
	var before time.Time // zero: nothing is too old
	if t.opts.MaxAge > 0 {
		before = t.opts.Now().Add(-t.opts.MaxAge)
	}
	out := make([]Trimmed, len(ids))
	active := make([]int, 0, len(ids))
	if n := len(ids); n > 0 {
		for i := range n {
			out[i].Tenant = ids[i]
			active = append(active, (i+t.runs)%n)
		}
	}
	t.runs++
	if t.opts.MaxAge == 0 && t.opts.MaxCount == 0 {
		active = nil
	}
	for len(active) > 0 && ctx.Err() == nil {
		left := active[:0]
		for _, i := range active {
			if ctx.Err() == nil && t.batch(ctx, &out[i], before) {
				left = append(left, i)
			}
		}
		active = left
	}
	failed := 0
	for _, r := range out {
		if r.Err != nil {
			failed++
		}
	}
	t.opts.Metrics.run(failed == 0 && ctx.Err() == nil)
	if failed > 0 {
		return out, fmt.Errorf("outbox: %d tenants could not be trimmed", failed)
	}
	return out, ctx.Err()
}

// batch runs one trim transaction of r's tenant and reports whether it
// may have more to trim in this run.
func (t *Trimmer) batch(ctx context.Context, r *Trimmed, before time.Time) bool {
	want := min(t.opts.BatchSize, t.opts.MaxPerRun-int(r.Events))
	var n int64
	tctx := tenant.WithID(ctx, r.Tenant)
	err := t.opts.Store.Tx(tctx, func(tx *store.Tx) error {
		var err error
		n, err = tx.TrimEvents(tctx, before, t.opts.MaxCount, want)
		return err
	})
	switch {
	case err == nil:
	case errors.Is(err, store.ErrUnknownTenant), errors.Is(err, store.ErrEventsUnsupported), ctx.Err() != nil:
		return false // offboarded meanwhile, no outbox, or stopping: nothing to do
	default:
		r.Err = err
		t.opts.Metrics.failed()
		t.log.Warn("outbox trim failed", slog.String("tenant", r.Tenant.String()), slog.String("error", err.Error()))
		return false
	}
	r.Events += n
	t.opts.Metrics.add(r.Tenant, n)
	return n == int64(want) && int(r.Events) < t.opts.MaxPerRun
}
