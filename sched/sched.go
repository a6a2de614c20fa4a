package sched

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Options configures New.
type Options struct {
	// Weight gives a tenant's share (at least 1; a lower value counts as
	// 1), asked each time the tenant is queued; nil gives every tenant 1.
	// It must not call back into the Scheduler.
	Weight func(tenant.ID) int
}

// Outcome is what a batch reports when it ends.
type Outcome struct {
	// Cost is the work the batch did (events published, records purged);
	// values below 1 count as 1. A tenant's virtual time advances by
	// Cost/weight.
	Cost int
	// More says the tenant has work left: it is queued again.
	More bool
	// Delay holds the tenant back this long before it is queued again
	// (with More, or if Ready was called meanwhile).
	Delay time.Duration
}

// Scheduler queues ready tenants and hands them to workers fairly. It is
// safe for concurrent use. The zero value is not usable; call New.
type Scheduler struct {
	weight func(tenant.ID) int

	mu      sync.Mutex
	cond    *sync.Cond // signalled when a tenant is queued; uses mu
	vt      float64    // virtual time: the start tag of the last tenant handed out
	queue   tagHeap    // queued tenants by virtual start time
	tenants map[tenant.ID]*entry
	closed  bool
}

// entry is a tenant's state, kept while it is queued, running or parked.
type entry struct {
	id      tenant.ID
	tag     float64 // virtual time at which its next batch starts
	index   int     // in queue; -1 when not queued
	running bool
	parked  bool // held back by a Delay
	ready   bool // Ready while running or parked
}

// New returns an empty Scheduler.
func New(opts Options) *Scheduler {
	s := &Scheduler{weight: opts.Weight, tenants: make(map[tenant.ID]*entry)}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Ready marks id as having work. It never blocks: a tenant already queued
// stays queued once; one running or held back is queued again when its
// batch ends or its delay is over. The zero ID is ignored.
func (s *Scheduler) Ready(id tenant.ID) {
	if id.IsZero() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.tenants[id]
	if e == nil {
		e = &entry{id: id, tag: s.vt, index: -1}
		s.tenants[id] = e
	}
	if e.index >= 0 {
		return
	}
	if e.running || e.parked {
		e.ready = true
		return
	}
	s.push(e)
}

// push queues e; mu is held.
func (s *Scheduler) push(e *entry) {
	if e.tag < s.vt {
		e.tag = s.vt // no credit for idle time
	}
	e.ready = false
	heap.Push(&s.queue, e)
	s.cond.Signal()
}

// Next waits for a queued tenant and hands it out: the caller runs one
// batch for it and must call Done. It returns ctx's error if ctx ends
// first, or ErrClosed after Close.
func (s *Scheduler) Next(ctx context.Context) (tenant.ID, error) {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) == 0 && !s.closed && ctx.Err() == nil {
		s.cond.Wait()
	}
	if s.closed {
		return tenant.ID{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return tenant.ID{}, err
	}
	e := heap.Pop(&s.queue).(*entry)
	s.vt = e.tag
	e.running = true
	return e.id, nil
}

// Done ends the batch of id that Next handed out, with its outcome.
func (s *Scheduler) Done(id tenant.ID, o Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.tenants[id]
	if e == nil || !e.running {
		return
	}
	e.running = false
	cost := max(o.Cost, 1)
	w := 1
	if s.weight != nil {
		w = max(s.weight(id), 1)
	}
	e.tag += float64(cost) / float64(w)
	if o.More {
		e.ready = true
	}
	if o.Delay > 0 {
		e.parked = true
		time.AfterFunc(o.Delay, func() { s.unpark(e) })
		return
	}
	s.settle(e)
}

// settle queues e again if it is ready, else forgets it once it holds no
// debt; mu is held.
func (s *Scheduler) settle(e *entry) {
	switch {
	case e.ready:
		s.push(e)
	case e.tag <= s.vt:
		delete(s.tenants, e.id)
	default:
		// Idle with a virtual time ahead of the scheduler's: kept, so that
		// a tenant that just ran a big batch cannot come back at once
		// without paying for it. Forgotten when it is next settled or
		// the map is pruned.
		s.prune()
	}
}

// prune forgets idle tenants the virtual time has caught up with, when
// there are many of them; mu is held.
func (s *Scheduler) prune() {
	if len(s.tenants) < 2*len(s.queue)+64 {
		return
	}
	for id, e := range s.tenants {
		if e.index < 0 && !e.running && !e.parked && !e.ready && e.tag <= s.vt {
			delete(s.tenants, id)
		}
	}
}

func (s *Scheduler) unpark(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.parked = false
	if s.tenants[e.id] == e {
		s.settle(e)
	}
}

// Queued returns how many tenants wait for a worker.
func (s *Scheduler) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Close wakes every Next with ErrClosed; later Ready calls queue nothing
// that anyone takes.
func (s *Scheduler) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.cond.Broadcast()
}

// Run runs workers goroutines until ctx ends or Close: each takes the
// next tenant, calls fn with ctx carrying that tenant (tenant.WithID), and
// ends the batch with fn's outcome. It returns when every worker has.
func (s *Scheduler) Run(ctx context.Context, workers int, fn func(ctx context.Context) Outcome) {
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for {
				id, err := s.Next(ctx)
				if err != nil {
					return
				}
				o := fn(tenant.WithID(ctx, id))
				s.Done(id, o)
			}
		})
	}
	wg.Wait()
}
