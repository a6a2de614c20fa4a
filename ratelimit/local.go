package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// DefaultIdleTimeout is how long a full bucket is kept after its last
// request before Local evicts it.
const DefaultIdleTimeout = time.Minute

// LocalOptions configures NewLocal.
type LocalOptions struct {
	// Now is the clock (time.Now if nil); tests pass a fake one.
	Now func() time.Time
	// IdleTimeout: a bucket unused for this long and full again is
	// evicted (it is then indistinguishable from a new one, so eviction
	// never gives a tenant more than its burst). Default
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// Local is an in-memory Limiter: one token bucket per tenant, created on
// the tenant's first request and evicted when idle, so memory is bounded by
// the tenants active within the idle timeout. It is safe for concurrent use.
type Local struct {
	now       func() time.Time
	idle      time.Duration
	mu        sync.Mutex
	buckets   map[tenant.ID]*bucket
	nextSweep time.Time
}

// bucket is one tenant's token bucket.
type bucket struct {
	tokens float64
	rate   float64
	burst  int
	last   time.Time // when tokens was computed (and the last request)
}

// NewLocal returns an empty Local limiter.
func NewLocal(opts LocalOptions) *Local {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	return &Local{now: opts.Now, idle: opts.IdleTimeout, buckets: map[tenant.ID]*bucket{}}
}

// Allow takes one token from id's bucket. A change of l (a new tier or
// override) applies from this request on; the tokens held are kept, capped
// at the new burst. It never returns an error.
func (l *Local) Allow(_ context.Context, id tenant.ID, lim limits.Limits) (Decision, error) {
	rate, burst, ok := params(lim)
	if !ok {
		return unlimited, nil
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.buckets[id]
	if b == nil {
		b = &bucket{tokens: float64(burst), last: now}
		l.buckets[id] = b
	}
	b.refill(now)
	b.rate, b.burst = rate, burst
	b.tokens = math.Min(b.tokens, float64(burst))
	d := Decision{Limit: burst}
	if b.tokens >= 1 {
		b.tokens--
		d.Allowed = true
	} else {
		d.RetryAfter = seconds((1 - b.tokens) / rate)
	}
	d.Remaining = int(math.Floor(b.tokens))
	d.Reset = seconds((float64(burst) - b.tokens) / rate)
	return d, nil
}

// refill adds the tokens earned since b.last (a clock going backwards
// earns nothing).
func (b *bucket) refill(now time.Time) {
	if el := now.Sub(b.last).Seconds(); el > 0 && b.rate > 0 {
		b.tokens = math.Min(float64(b.burst), b.tokens+el*b.rate)
	}
	if now.After(b.last) {
		b.last = now
	}
}

// sweep evicts idle buckets, at most once per idle timeout. l.mu is held.
func (l *Local) sweep(now time.Time) {
	if now.Before(l.nextSweep) {
		return
	}
	l.nextSweep = now.Add(l.idle)
	for id, b := range l.buckets {
		if now.Sub(b.last) < l.idle {
			continue
		}
		b.refill(now)
		if b.tokens >= float64(b.burst) {
			delete(l.buckets, id)
		}
	}
}

// Len returns the number of buckets held (for tests and metrics).
func (l *Local) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
