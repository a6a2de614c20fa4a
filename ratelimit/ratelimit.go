// Package ratelimit limits each tenant's request rate: a token bucket per
// tenant whose refill rate is limits.Limits.RequestsPerSecond and whose size
// is limits.Limits.Burst.
//
// Local keeps the buckets in memory (one server instance). Redis keeps them
// in Redis (GCRA, one key per tenant) so that every server instance shares
// one budget per tenant, and falls back to local buckets — or refuses, if
// configured to fail closed — while Redis is unreachable.
package ratelimit

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// ErrUnavailable is returned by a limiter configured to fail closed when
// its shared state (Redis) cannot be reached. The server answers 503.
var ErrUnavailable = errors.New("rate limiter unavailable")

// Decision is the outcome of one request against a tenant's budget.
type Decision struct {
	// Allowed says whether the request may proceed.
	Allowed bool
	// Limit is the bucket size (the burst); 0 means the tenant is not
	// rate limited (no headers are sent).
	Limit int
	// Remaining is how many more requests would be allowed right now.
	Remaining int
	// Reset is the time until the bucket is full again.
	Reset time.Duration
	// RetryAfter is, for a refused request, the time until one request
	// will be allowed; zero when Allowed.
	RetryAfter time.Duration
}

// Limiter decides whether a tenant's request fits its rate limit.
type Limiter interface {
	// Allow takes one request from id's budget under l.
	Allow(ctx context.Context, id tenant.ID, l limits.Limits) (Decision, error)
}

// params are the bucket parameters of l; ok is false when l sets no rate
// limit (RequestsPerSecond <= 0 or not a finite number).
func params(l limits.Limits) (rate float64, burst int, ok bool) {
	rate = l.RequestsPerSecond
	if !(rate > 0) || math.IsInf(rate, 0) {
		return 0, 0, false
	}
	burst = max(l.Burst, 1)
	return rate, burst, true
}

// unlimited is the decision for a tenant without a rate limit.
var unlimited = Decision{Allowed: true}

// seconds converts a (possibly fractional) number of seconds to a Duration,
// rounded up to the nanosecond (after dropping float noise below a
// picosecond) so that a client never retries too early.
func seconds(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(math.Round(s*1e12) / 1e3))
}
