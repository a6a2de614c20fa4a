package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Defaults of a Sweeper.
const (
	// DefaultInterval is the pause between two runs of Run.
	DefaultInterval = time.Minute
	// DefaultBatchSize is the most records one transaction purges.
	DefaultBatchSize = 500
	// DefaultMaxPerRun is the most records one run purges of one tenant.
	DefaultMaxPerRun = 10000
)

// The audit entry of a tenant's purge.
const (
	// Action is the audit action of a tenant's purge in one run.
	Action = "retention.purge"
	// Principal is who the audit log says purged.
	Principal = "system:retention"
)

// Rules lists the rules to enforce, by tenant; *catalog.Catalog implements
// it. Rules of one tenant must be adjacent.
type Rules interface {
	RetentionRules(ctx context.Context) ([]catalog.RetentionRule, error)
}

// Runner runs fn in a write transaction of the tenant in ctx, committing if
// fn returns nil; *store.Router implements it.
type Runner interface {
	Tx(ctx context.Context, fn func(*store.Tx) error) error
}

// RunnerFunc adapts a function to Runner (e.g. a wrapper of Router.Tx that
// also feeds usage gauges).
type RunnerFunc func(ctx context.Context, fn func(*store.Tx) error) error

// Tx implements Runner.
func (f RunnerFunc) Tx(ctx context.Context, fn func(*store.Tx) error) error { return f(ctx, fn) }

// Auditor appends audit entries; *audit.Log implements it.
type Auditor interface {
	Append(ctx context.Context, e audit.Entry) (audit.Entry, error)
}

// Options configures New.
type Options struct {
	// Rules lists the rules; required.
	Rules Rules
	// Store runs each tenant's purge transactions; required.
	Store Runner
	// Audit receives one entry per tenant and run that purged records
	// (nil: none).
	Audit Auditor
	// Now is the clock the cutoffs are computed from (time.Now if nil).
	Now func() time.Time
	// BatchSize bounds the records one transaction purges (default
	// DefaultBatchSize, at most store.MaxPurge).
	BatchSize int
	// MaxPerRun bounds the records one run purges of one tenant (default
	// DefaultMaxPerRun).
	MaxPerRun int
	// Metrics counts the purges (nil: not counted).
	Metrics *Metrics
	// Logger receives failed purges and audit appends (nil: discarded).
	Logger *slog.Logger
}

// Sweeper purges expired records. It is safe for concurrent use; runs do
// not overlap.
type Sweeper struct {
	opts Options
	log  *slog.Logger
	mu   sync.Mutex // held by a run
	runs int        // runs so far, guarded by mu: where the rotation starts
}

// New returns a Sweeper for opts.
func New(opts Options) (*Sweeper, error) {
	if opts.Rules == nil || opts.Store == nil {
		return nil, errors.New("retention: Options.Rules and Options.Store are required")
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.BatchSize < 1 || opts.BatchSize > store.MaxPurge {
		return nil, fmt.Errorf("retention: BatchSize must be 1 to %d", store.MaxPurge)
	}
	if opts.MaxPerRun == 0 {
		opts.MaxPerRun = DefaultMaxPerRun
	}
	if opts.MaxPerRun < 1 {
		return nil, errors.New("retention: MaxPerRun must be at least 1")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{opts: opts, log: log}, nil
}

// Purged is what a run purged of one tenant. Err is the error that ended
// the tenant's part of the run early, if one did; what it purged before
// stays purged.
type Purged struct {
	Tenant tenant.ID
	store.PurgeResult
	Err error
}

// Run runs a sweep at once and then every interval after the end of the
// previous one, until ctx is done. An interval of 0 or less disables it:
// Run returns at once. A failed run is logged.
func (s *Sweeper) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
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
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("retention sweep failed", slog.String("error", err.Error()))
		}
		timer.Reset(interval)
	}
}

// job is one tenant's part of a run.
type job struct {
	tenant tenant.ID
	rules  []catalog.RetentionRule
	before []time.Time // the cutoff of each rule
	next   int         // the rule to purge next; len(rules): done
	got    Purged
}

// Sweep runs once: it purges, round-robin in bounded batches (see the
// package documentation), every tenant's records older than its rules
// allow, and returns what it purged of each tenant that had rules, by
// tenant. Its error says the rules could not be read, or some tenants
// failed (their Purged.Err); the others were purged all the same.
func (s *Sweeper) Sweep(ctx context.Context) ([]Purged, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	runID := "retention-" + strconv.FormatInt(now.UnixNano(), 10)
	rules, err := s.opts.Rules.RetentionRules(ctx)
	if err != nil {
		s.opts.Metrics.run(false)
		return nil, fmt.Errorf("retention: read rules: %w", err)
	}
	jobs := plan(rules, now)
	// The rotation starts one tenant further along each run.
	active := make([]*job, 0, len(jobs))
	if len(jobs) > 0 {
		start := s.runs % len(jobs)
		active = append(append(active, jobs[start:]...), jobs[:start]...)
	}
	s.runs++
	for len(active) > 0 && ctx.Err() == nil {
		var left []*job
		for _, j := range active {
			if ctx.Err() != nil {
				left = append(left, j)
				continue
			}
			if s.batch(ctx, j) {
				left = append(left, j)
			} else {
				s.finish(ctx, j, runID)
			}
		}
		active = left
	}
	for _, j := range active { // cancelled: what was purged is still recorded
		s.finish(ctx, j, runID)
	}
	out := make([]Purged, len(jobs))
	failed := 0
	for i, j := range jobs {
		out[i] = j.got
		if j.got.Err != nil {
			failed++
		}
	}
	s.opts.Metrics.run(failed == 0 && ctx.Err() == nil)
	if failed > 0 {
		return out, fmt.Errorf("retention: %d tenants could not be purged", failed)
	}
	return out, ctx.Err()
}

// plan groups rules by tenant, with each rule's cutoff.
func plan(rules []catalog.RetentionRule, now time.Time) []*job {
	var jobs []*job
	for _, r := range rules {
		if len(jobs) == 0 || jobs[len(jobs)-1].tenant != r.Tenant {
			jobs = append(jobs, &job{tenant: r.Tenant, got: Purged{Tenant: r.Tenant}})
		}
		j := jobs[len(jobs)-1]
		j.rules = append(j.rules, r)
		j.before = append(j.before, now.Add(-r.MaxAge))
	}
	return jobs
}

// batch runs one transaction of j's tenant that purges at most BatchSize
// records (and no more than MaxPerRun allows), rule after rule; it reports
// whether j may have more to purge in this run.
func (s *Sweeper) batch(ctx context.Context, j *job) bool {
	budget := min(s.opts.BatchSize, s.opts.MaxPerRun-int(j.got.Records))
	var got store.PurgeResult
	next := j.next
	tctx := tenant.WithID(ctx, j.tenant)
	err := s.opts.Store.Tx(tctx, func(tx *store.Tx) error {
		got, next = store.PurgeResult{}, j.next
		for next < len(j.rules) && int(got.Records) < budget {
			want := budget - int(got.Records)
			res, err := tx.Purge(tctx, j.rules[next].Collection, j.before[next], want)
			if err != nil {
				return fmt.Errorf("purge %s: %w", j.rules[next].Collection, err)
			}
			got.Records += res.Records
			got.Bytes += res.Bytes
			if int(res.Records) < want {
				next++ // nothing older is left in this collection
			}
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, store.ErrUnknownTenant) && ctx.Err() == nil { // offboarded meanwhile: nothing to do
			j.got.Err = err
			s.opts.Metrics.failed()
			s.log.Warn("retention purge failed", slog.String("tenant", j.tenant.String()), slog.String("error", err.Error()))
		}
		return false
	}
	j.next = next
	j.got.Records += got.Records
	j.got.Bytes += got.Bytes
	s.opts.Metrics.purged(j.tenant, got)
	return j.next < len(j.rules) && int(j.got.Records) < s.opts.MaxPerRun
}

// finish records j's purge in the audit log: one entry on the tenant's
// chain if the run purged any of its records.
func (s *Sweeper) finish(ctx context.Context, j *job, runID string) {
	if j.got.Records == 0 || s.opts.Audit == nil {
		return
	}
	e := audit.Entry{Chain: j.tenant.String(), Principal: Principal, Action: Action,
		Resource: "tenant/" + j.tenant.String(), Decision: "purged:" + strconv.FormatInt(j.got.Records, 10), RequestID: runID}
	if _, err := s.opts.Audit.Append(context.WithoutCancel(ctx), e); err != nil {
		s.opts.Metrics.failed()
		s.log.Error("retention purge not audited", slog.String("tenant", j.tenant.String()),
			slog.Int64("records", j.got.Records), slog.String("error", err.Error()))
	}
}
