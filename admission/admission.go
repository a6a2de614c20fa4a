// Package admission bounds the requests a server works on at once: a
// global in-flight cap, a per-tenant concurrency limit, and, when either
// is reached, a bounded wait queue per tenant from which waiters are
// admitted by deficit round robin weighted by the tenant's
// limits.Limits.Weight. A tenant that floods fills its own queue and is
// refused (ErrTenantOverloaded) while other tenants keep being admitted in
// their weighted turns. With Options.FIFO the controller is instead one
// plain first-come-first-served queue under the global cap, with no
// per-tenant limit: the behaviour without isolation, kept for comparison.
package admission

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/fair"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Errors returned by Acquire.
var (
	// ErrTenantOverloaded: the tenant's own queue is full, or it waited
	// longer than Options.MaxWait while at its own concurrency limit (429
	// tenant_overloaded).
	ErrTenantOverloaded = errors.New("admission: tenant over its concurrency limit and queue")
	// ErrOverloaded: the server is saturated and the request waited longer
	// than Options.MaxWait, or the FIFO queue is full (503 overloaded).
	ErrOverloaded = errors.New("admission: server overloaded")
)

// Reasons, as passed to Options.OnReject and used as metric labels.
const (
	ReasonQueueFull = "queue_full" // ErrTenantOverloaded, queue full
	ReasonTenantCap = "tenant_cap" // ErrTenantOverloaded, timed out at its own limit
	ReasonSaturated = "saturated"  // ErrOverloaded
	ReasonCancelled = "cancelled"  // the caller's context ended while waiting
)

// Defaults for Options.
const (
	DefaultMaxWait      = 2 * time.Second
	DefaultFIFODepth    = 1024
	DefaultConcurrent   = 8
	DefaultQueueDepth   = 32
	minDefaultCapacity  = 16
	capacityPerMaxProcs = 4
)

// DefaultCapacity is the global in-flight cap used when Options.Capacity is
// zero: 4×GOMAXPROCS, at least 16.
func DefaultCapacity() int {
	return max(minDefaultCapacity, capacityPerMaxProcs*runtime.GOMAXPROCS(0))
}

// Options configures New.
type Options struct {
	// Capacity is the global in-flight cap (default DefaultCapacity()).
	Capacity int
	// Limits gives each tenant's MaxConcurrent, Weight and QueueDepth
	// (zero or negative fields take DefaultConcurrent, 1 and
	// DefaultQueueDepth). Nil means those defaults for every tenant.
	Limits limits.Source
	// MaxWait bounds how long a request waits in a queue (default
	// DefaultMaxWait).
	MaxWait time.Duration
	// FIFO turns fairness off: one FIFO queue of FIFODepth under the
	// global cap, no per-tenant limits. For comparison only.
	FIFO bool
	// FIFODepth bounds the FIFO queue (default DefaultFIFODepth).
	FIFODepth int
	// OnReject, if set, is called (outside the lock) for each request
	// refused or abandoned, with the reason.
	OnReject func(id tenant.ID, reason string)
	// OnWait, if set, is called (outside the lock) for each request that
	// must wait in a queue, with the request's context, before it waits.
	OnWait func(ctx context.Context, id tenant.ID)
	// Now is the clock for wait deadlines (time.Now if nil).
	Now func() time.Time
}

// Controller admits requests. It is safe for concurrent use.
type Controller struct {
	opts Options

	mu       sync.Mutex
	inflight int                           // guarded by mu
	running  map[tenant.ID]int             // guarded by mu; in flight per tenant
	caps     map[tenant.ID]int             // guarded by mu; MaxConcurrent of tenants with work
	queue    *fair.DRR[tenant.ID, *waiter] // guarded by mu; fair mode
	fifo     []*waiter                     // guarded by mu; FIFO mode
}

// waiter is a queued request; ready is closed once it is admitted.
type waiter struct {
	id       tenant.ID
	ready    chan struct{}
	admitted bool // guarded by Controller.mu
}

// New returns a Controller.
func New(opts Options) *Controller {
	if opts.Capacity <= 0 {
		opts.Capacity = DefaultCapacity()
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.FIFODepth <= 0 {
		opts.FIFODepth = DefaultFIFODepth
	}
	return &Controller{
		opts:    opts,
		running: make(map[tenant.ID]int),
		caps:    make(map[tenant.ID]int),
		queue:   fair.New[tenant.ID, *waiter](),
	}
}

// Stats is a snapshot of the controller.
type Stats struct {
	InFlight int // admitted and not yet released
	Queued   int // waiting, all tenants
}

// Stats returns the current in-flight and queued counts.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{InFlight: c.inflight, Queued: c.queue.Len() + len(c.fifo)}
}

// Queued returns how many of id's requests are waiting.
func (c *Controller) Queued(id tenant.ID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queue.QueueLen(id)
}

// TenantQueue is one tenant's number of waiting requests.
type TenantQueue struct {
	Tenant tenant.ID
	Queued int
}

// QueuedTop returns the n tenants with the most requests waiting (most
// first, ties by id) and the number of requests the other tenants have
// waiting, so that a metric can name a bounded number of tenants. The
// FIFO queue is not per tenant and is left out.
func (c *Controller) QueuedTop(n int) (top []TenantQueue, other int) {
	c.mu.Lock()
	var all []TenantQueue
	c.queue.Backlog(func(id tenant.ID, q int) { all = append(all, TenantQueue{id, q}) })
	c.mu.Unlock()
	slices.SortFunc(all, func(a, b TenantQueue) int {
		if a.Queued != b.Queued {
			return b.Queued - a.Queued
		}
		return strings.Compare(a.Tenant.String(), b.Tenant.String())
	})
	if len(all) > n {
		for _, q := range all[n:] {
			other += q.Queued
		}
		all = all[:n]
	}
	return all, other
}

func (c *Controller) limitsFor(ctx context.Context, id tenant.ID) (conc, weight, depth int) {
	var l limits.Limits
	if c.opts.Limits != nil {
		l, _ = c.opts.Limits.For(ctx, id) // on error: the defaults below
	}
	conc, weight, depth = l.MaxConcurrent, l.Weight, l.QueueDepth
	if conc <= 0 {
		conc = DefaultConcurrent
	}
	if weight <= 0 {
		weight = 1
	}
	if depth <= 0 {
		depth = DefaultQueueDepth
	}
	return conc, weight, depth
}

// Acquire admits a request of tenant id, waiting in its queue if the
// server or the tenant is at its limit. On success the caller must call
// release exactly once when the request is done. It fails with
// ErrTenantOverloaded, ErrOverloaded or the context's error.
func (c *Controller) Acquire(ctx context.Context, id tenant.ID) (release func(), err error) {
	conc, weight, depth := 0, 1, 0
	if !c.opts.FIFO {
		conc, weight, depth = c.limitsFor(ctx, id)
	}
	w, err := c.enqueue(id, conc, weight, depth)
	if err != nil {
		c.reject(id, reasonOf(err))
		return nil, err
	}
	if w == nil {
		return c.releaser(id), nil
	}
	if c.opts.OnWait != nil {
		c.opts.OnWait(ctx, id)
	}
	timer := time.NewTimer(c.opts.MaxWait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return c.releaser(id), nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = ErrOverloaded
	}
	c.mu.Lock()
	if w.admitted { // admitted while we were giving up: hand the slot back
		c.mu.Unlock()
		c.releaser(id)()
		c.reject(id, reasonOf(err))
		return nil, err
	}
	if c.opts.FIFO {
		for i, x := range c.fifo {
			if x == w {
				c.fifo = append(c.fifo[:i], c.fifo[i+1:]...)
				break
			}
		}
	} else {
		c.queue.Remove(id, w)
		if errors.Is(err, ErrOverloaded) && c.running[id] >= c.caps[id] {
			err = ErrTenantOverloaded
		}
		c.forget(id)
	}
	c.mu.Unlock()
	r := reasonOf(err)
	if errors.Is(err, ErrTenantOverloaded) {
		r = ReasonTenantCap
	}
	c.reject(id, r)
	return nil, err
}

func reasonOf(err error) string {
	switch {
	case errors.Is(err, ErrTenantOverloaded):
		return ReasonQueueFull
	case errors.Is(err, ErrOverloaded):
		return ReasonSaturated
	default:
		return ReasonCancelled
	}
}

func (c *Controller) reject(id tenant.ID, reason string) {
	if c.opts.OnReject != nil {
		c.opts.OnReject(id, reason)
	}
}

// enqueue admits at once (nil waiter), queues (a waiter), or refuses.
func (c *Controller) enqueue(id tenant.ID, conc, weight, depth int) (*waiter, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opts.FIFO {
		if c.inflight < c.opts.Capacity && len(c.fifo) == 0 {
			c.inflight++
			return nil, nil
		}
		if len(c.fifo) >= c.opts.FIFODepth {
			return nil, ErrOverloaded
		}
		w := &waiter{id: id, ready: make(chan struct{})}
		c.fifo = append(c.fifo, w)
		return w, nil
	}
	c.caps[id] = conc
	if c.inflight < c.opts.Capacity && c.running[id] < conc && c.queue.QueueLen(id) == 0 {
		c.inflight++
		c.running[id]++
		return nil, nil
	}
	if c.queue.QueueLen(id) >= depth {
		c.forget(id)
		return nil, ErrTenantOverloaded
	}
	w := &waiter{id: id, ready: make(chan struct{})}
	c.queue.Push(id, weight, w)
	return w, nil
}

// forget drops id's bookkeeping once it has nothing running or queued.
func (c *Controller) forget(id tenant.ID) {
	if c.running[id] == 0 && c.queue.QueueLen(id) == 0 {
		delete(c.running, id)
		delete(c.caps, id)
	}
}

func (c *Controller) releaser(id tenant.ID) func() {
	var once sync.Once
	return func() { once.Do(func() { c.release(id) }) }
}

func (c *Controller) release(id tenant.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight--
	if !c.opts.FIFO {
		c.running[id]--
		c.forget(id)
	}
	c.dispatch()
}

// dispatch admits waiters while there is room. Caller holds mu.
func (c *Controller) dispatch() {
	for c.inflight < c.opts.Capacity {
		var w *waiter
		if c.opts.FIFO {
			if len(c.fifo) == 0 {
				return
			}
			w, c.fifo = c.fifo[0], c.fifo[1:]
		} else {
			var ok bool
			_, w, ok = c.queue.Pop(func(id tenant.ID) bool { return c.running[id] < c.caps[id] })
			if !ok {
				return
			}
			c.running[w.id]++
		}
		c.inflight++
		w.admitted = true
		close(w.ready)
	}
}
