package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Defaults for HubOptions.
const (
	DefaultMaxStreamsPerTenant = 32
	DefaultMaxStreams          = 10_000
)

// ErrTooManyStreams: the tenant already has its limit of open streams on
// this instance (HubOptions.MaxPerTenant). Close one, or ask an operator
// for a higher limit.
var ErrTooManyStreams = errors.New("the tenant has too many open event streams")

// ErrHubFull: this instance already serves its limit of open streams,
// all tenants together (HubOptions.MaxTotal). Retry later or on another
// instance.
var ErrHubFull = errors.New("the server has too many open event streams")

// ErrHubClosed: the hub was shut down (the server is stopping); no new
// stream opens.
var ErrHubClosed = errors.New("the server is shutting down its event streams")

// HubOptions bound the streams of a Hub.
type HubOptions struct {
	// MaxPerTenant bounds each tenant's open subscriptions (default
	// DefaultMaxStreamsPerTenant).
	MaxPerTenant int
	// MaxTotal bounds all tenants' open subscriptions together (default
	// DefaultMaxStreams).
	MaxTotal int
}

// Hub wakes the streams of a tenant when the tenant's events commit. It
// keeps one subscription per open stream, per tenant: Notify(id) wakes
// tenant id's subscriptions and no other. Notify never blocks: each
// subscription has a wake-up buffer of one, and a wake-up finding it full
// is dropped (the stream will read everything committed anyway when it
// wakes). A Hub also counts open streams against its limits. It is safe
// for concurrent use.
type Hub struct {
	maxTenant, maxTotal int

	// gen numbers the Notify calls of all tenants (see tenantSubs.gen).
	gen atomic.Uint64
	// done is closed by Shutdown.
	done     chan struct{}
	shutdown sync.Once

	mu    sync.RWMutex // guards the fields below
	total int
	subs  map[tenant.ID]*tenantSubs
}

// tenantSubs are one tenant's subscriptions.
type tenantSubs struct {
	// gen is the hub's gen at the tenant's latest Notify (or when the
	// entry was made): a read of the outbox begun after observing gen g
	// sees every commit notified up to g.
	gen atomic.Uint64
	m   map[*Subscription]struct{}
}

// NewHub returns an empty hub.
func NewHub(opts HubOptions) *Hub {
	if opts.MaxPerTenant <= 0 {
		opts.MaxPerTenant = DefaultMaxStreamsPerTenant
	}
	if opts.MaxTotal <= 0 {
		opts.MaxTotal = DefaultMaxStreams
	}
	return &Hub{maxTenant: opts.MaxPerTenant, maxTotal: opts.MaxTotal, subs: map[tenant.ID]*tenantSubs{}, done: make(chan struct{})}
}

// Shutdown ends every open stream (each ends after its current write) and
// refuses new ones with ErrHubClosed: call it when the server begins a
// graceful shutdown (http.Server.RegisterOnShutdown), which would
// otherwise wait for streams that never finish. Safe to call more than
// once.
func (h *Hub) Shutdown() { h.shutdown.Do(func() { close(h.done) }) }

// Notify wakes tenant id's subscriptions. It never blocks; plug it into
// store.Config.EventsCommitted.
func (h *Hub) Notify(id tenant.ID) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	ts := h.subs[id]
	if ts == nil {
		return
	}
	g := h.gen.Add(1)
	for {
		old := ts.gen.Load()
		if old >= g || ts.gen.CompareAndSwap(old, g) {
			break
		}
	}
	for s := range ts.m {
		select {
		case s.c <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// Poll wakes the streams of every subscribed tenant once per every, the
// tenants spread over the interval, until ctx is done or the hub shuts
// down: commits made through another process (another instance on the
// same PostgreSQL) then reach this hub's streams within about every. The
// streams of one tenant are woken together, so they share one read of the
// outbox (Handler), where each stream's own PollInterval would read once
// per stream. Run it in its own goroutine; give the Handler a negative
// PollInterval then.
func (h *Hub) Poll(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.done:
			return
		case <-t.C:
		}
		h.mu.RLock()
		ids := make([]tenant.ID, 0, len(h.subs))
		for id := range h.subs {
			ids = append(ids, id)
		}
		h.mu.RUnlock()
		gap := every / time.Duration(len(ids)+1)
		for _, id := range ids {
			h.Notify(id)
			select {
			case <-ctx.Done():
				return
			case <-time.After(gap):
			}
		}
	}
}

// Subscribe opens a subscription to tenant id's commits. It fails with
// ErrTooManyStreams or ErrHubFull (wrapped) when a limit is reached. Close
// the subscription when the stream ends.
func (h *Hub) Subscribe(id tenant.ID) (*Subscription, error) {
	if id.IsZero() {
		return nil, fmt.Errorf("events: subscribe: %w", tenant.ErrMissing)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.done:
		return nil, ErrHubClosed
	default:
	}
	if h.total >= h.maxTotal {
		return nil, fmt.Errorf("%w (%d)", ErrHubFull, h.maxTotal)
	}
	ts := h.subs[id]
	if ts != nil && len(ts.m) >= h.maxTenant {
		return nil, fmt.Errorf("%w (%d on this instance)", ErrTooManyStreams, h.maxTenant)
	}
	if ts == nil {
		ts = &tenantSubs{m: map[*Subscription]struct{}{}}
		ts.gen.Store(h.gen.Load())
		h.subs[id] = ts
	}
	s := &Subscription{h: h, id: id, ts: ts, c: make(chan struct{}, 1)}
	ts.m[s] = struct{}{}
	h.total++
	return s, nil
}

// Open returns the number of open subscriptions of tenant id.
func (h *Hub) Open(id tenant.ID) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if ts := h.subs[id]; ts != nil {
		return len(ts.m)
	}
	return 0
}

// Total returns the number of open subscriptions of all tenants.
func (h *Hub) Total() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.total
}

// Subscription is one stream's subscription to its tenant's commits.
type Subscription struct {
	h    *Hub
	id   tenant.ID
	ts   *tenantSubs
	c    chan struct{}
	once sync.Once
}

// generation is the tenant's notification generation now.
func (s *Subscription) generation() uint64 { return s.ts.gen.Load() }

// C receives a value after one or more of the tenant's commits since the
// last receive (and possibly, rarely, when nothing new committed).
func (s *Subscription) C() <-chan struct{} { return s.c }

// Done is closed when the hub shuts down: end the stream.
func (s *Subscription) Done() <-chan struct{} { return s.h.done }

// Tenant returns the tenant subscribed to.
func (s *Subscription) Tenant() tenant.ID { return s.id }

// Close ends the subscription and frees its place under the limits. It is
// safe to call more than once.
func (s *Subscription) Close() {
	s.once.Do(func() {
		h := s.h
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(s.ts.m, s)
		if len(s.ts.m) == 0 && h.subs[s.id] == s.ts {
			delete(h.subs, s.id)
		}
		h.total--
	})
}
