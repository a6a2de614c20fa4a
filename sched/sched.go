// Package sched is a weighted fair scheduler for background work (purges,
// fleet migrations, exports): jobs wait in per-tenant queues and a fixed
// pool of workers takes them by deficit round robin over tenants (the
// same core as package admission's queue), weighted per tenant, with a cap
// on each tenant's concurrently running jobs.
package sched

import (
	"context"
	"errors"
	"sync"

	"github.com/bulkhead-dev/bulkhead/internal/fair"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Options.
const (
	DefaultWorkers      = 2
	DefaultMaxPerTenant = 1
)

// ErrClosed is returned by Submit after Run has returned.
var ErrClosed = errors.New("sched: scheduler stopped")

// Job is a unit of background work. Its context is done when the job's
// own (Submit's) context is or the scheduler stops.
type Job func(ctx context.Context) error

// Options configures New.
type Options struct {
	// Workers run jobs (default DefaultWorkers).
	Workers int
	// MaxPerTenant caps one tenant's running jobs (default
	// DefaultMaxPerTenant).
	MaxPerTenant int
	// Weight gives a tenant's share (nil or a result below 1: 1).
	Weight func(tenant.ID) int
	// Registerer, if set, receives the scheduler's metrics
	// (bulkhead_sched_*).
	Registerer prometheus.Registerer
	// TenantLabel bounds metric label values (for example
	// telemetry.Metrics.TenantLabel); nil puts every tenant under one
	// "_all" label.
	TenantLabel func(string) string
}

// Scheduler runs submitted jobs fairly across tenants. It is safe for
// concurrent use.
type Scheduler struct {
	opts Options

	mu      sync.Mutex
	queue   *fair.DRR[tenant.ID, *task] // guarded by mu
	running map[tenant.ID]int           // guarded by mu
	stopped bool                        // guarded by mu
	wake    chan struct{}               // a token per queued or freed slot

	queued *prometheus.GaugeVec
	done   *prometheus.CounterVec
}

type task struct {
	ctx    context.Context
	job    Job
	result chan error
	stop   func() bool // unregisters the cancellation watcher
}

// New returns a Scheduler; call Run to start its workers.
func New(opts Options) *Scheduler {
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.MaxPerTenant <= 0 {
		opts.MaxPerTenant = DefaultMaxPerTenant
	}
	if opts.TenantLabel == nil {
		opts.TenantLabel = func(string) string { return "_all" }
	}
	s := &Scheduler{
		opts:    opts,
		queue:   fair.New[tenant.ID, *task](),
		running: make(map[tenant.ID]int),
		wake:    make(chan struct{}, 1),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulkhead_sched_queued_jobs",
			Help: "Background jobs waiting, by tenant (bounded; see _other).",
		}, []string{"tenant"}),
		done: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_sched_jobs_total",
			Help: "Background jobs finished, by tenant (bounded) and outcome (ok, error, cancelled).",
		}, []string{"tenant", "outcome"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.queued, s.done)
	}
	return s
}

// Submit queues job for tenant id and returns a channel that receives the
// job's result once (ctx's error if ctx ends before the job starts, and
// ErrClosed if the scheduler stops first).
func (s *Scheduler) Submit(ctx context.Context, id tenant.ID, job Job) <-chan error {
	t := &task{ctx: ctx, job: job, result: make(chan error, 1)}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		t.result <- ErrClosed
		return t.result
	}
	w := 1
	if s.opts.Weight != nil {
		w = s.opts.Weight(id)
	}
	s.queue.Push(id, w, t)
	s.queued.WithLabelValues(s.opts.TenantLabel(id.String())).Inc()
	// A job whose context ends while it waits leaves its queue.
	t.stop = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		removed := s.queue.Remove(id, t)
		s.mu.Unlock()
		if removed {
			s.queued.WithLabelValues(s.opts.TenantLabel(id.String())).Dec()
			s.count(id, "cancelled")
			t.result <- ctx.Err()
		}
	})
	s.mu.Unlock()
	s.signal()
	return t.result
}

func (s *Scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run runs the workers until ctx is done, then waits for running jobs
// (whose contexts are cancelled) and fails queued ones with ErrClosed.
func (s *Scheduler) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < s.opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.worker(ctx)
		}()
	}
	wg.Wait()
	s.mu.Lock()
	s.stopped = true
	var left []*task
	for {
		_, t, ok := s.queue.Pop(nil)
		if !ok {
			break
		}
		t.stop()
		left = append(left, t)
	}
	s.mu.Unlock()
	for _, t := range left {
		t.result <- ErrClosed
	}
	s.queued.Reset()
}

func (s *Scheduler) worker(ctx context.Context) {
	for {
		s.mu.Lock()
		id, t, ok := s.queue.Pop(func(id tenant.ID) bool { return s.running[id] < s.opts.MaxPerTenant })
		if ok {
			s.running[id]++
			t.stop()
		}
		s.mu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
				continue
			}
		}
		label := s.opts.TenantLabel(id.String())
		s.queued.WithLabelValues(label).Dec()
		s.signal() // more may be runnable by another worker
		jctx, cancel := context.WithCancel(t.ctx)
		stop := context.AfterFunc(ctx, cancel)
		err := t.job(jctx)
		stop()
		cancel()
		s.mu.Lock()
		if s.running[id]--; s.running[id] == 0 {
			delete(s.running, id)
		}
		s.mu.Unlock()
		s.signal()
		switch {
		case err == nil:
			s.count(id, "ok")
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			s.count(id, "cancelled")
		default:
			s.count(id, "error")
		}
		t.result <- err
		if ctx.Err() != nil {
			return
		}
	}
}

func (s *Scheduler) count(id tenant.ID, outcome string) {
	s.done.WithLabelValues(s.opts.TenantLabel(id.String()), outcome).Inc()
}
