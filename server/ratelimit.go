package server

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/bulkhead-dev/bulkhead/ratelimit"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// openRateLimiter builds the rate limiter from the options: local buckets,
// or Redis when RedisURL is set. It returns the Redis client to close (or
// nil).
func (s *Server) openRateLimiter(opts Options) (redis.UniversalClient, error) {
	if opts.DisableRateLimit {
		return nil, nil // no rate limit
	}
	s.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bulkhead_ratelimit_throttled_total",
		Help: "Data-plane requests refused by the rate limiter, by tenant (bounded; see _other) and reason (rate_limited: over the tenant's rate, 429; unavailable: Redis unreachable with fail-closed, 503).",
	}, []string{"tenant", "reason"})
	s.metrics.Registry().MustRegister(s.throttled)
	s.rateLimits = opts.RateLimits
	if s.rateLimits == nil {
		s.rateLimits = s.limits
	}
	if opts.RedisURL == "" {
		s.limiter = ratelimit.NewLocal(ratelimit.LocalOptions{Now: opts.Now})
		return nil, nil
	}
	ro, err := redis.ParseURL(opts.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis: %v (use redis://host:6379/0)", err)
	}
	c := redis.NewClient(ro)
	s.limiter, err = ratelimit.NewRedis(ratelimit.RedisOptions{
		Client:     c,
		KeyPrefix:  opts.RedisKeyPrefix,
		Instances:  opts.Instances,
		FailClosed: opts.RateLimitFailClosed,
		Now:        opts.Now,
		Logger:     s.log,
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// rateLimited wraps a data-plane guard (s.data) so that its handlers run
// only within the tenant's rate limit: after authentication and
// authorization (the tenant is known), before the handler. Requests of
// support agents acting as a tenant (they carry the act-as header, which
// the guard refuses from tenant credentials) do not spend the tenant's
// budget; operators never reach a data-plane handler.
func (s *Server) rateLimited(guard func(string, http.HandlerFunc) http.HandlerFunc) func(string, http.HandlerFunc) http.HandlerFunc {
	return func(action string, h http.HandlerFunc) http.HandlerFunc {
		return guard(action, func(w http.ResponseWriter, r *http.Request) {
			id, err := tenant.FromContext(r.Context())
			if s.limiter == nil || err != nil || len(r.Header.Values(actAsHeader)) > 0 {
				h(w, r)
				return
			}
			l, err := s.rateLimits.For(r.Context(), id)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			d, err := s.limiter.Allow(r.Context(), id, l)
			if errors.Is(err, ratelimit.ErrUnavailable) {
				s.throttled.WithLabelValues(s.metrics.TenantLabel(id.String()), "unavailable").Inc()
				e := newError(http.StatusServiceUnavailable, "unavailable",
					"rate limits cannot be checked right now; retry shortly")
				e.header = http.Header{"Retry-After": {"1"}}
				writeProblem(w, e)
				return
			}
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			setRateLimitHeaders(w.Header(), d)
			if !d.Allowed {
				s.throttled.WithLabelValues(s.metrics.TenantLabel(id.String()), "rate_limited").Inc()
				e := newError(http.StatusTooManyRequests, "rate_limited",
					"this tenant is over its request rate limit; retry after the number of seconds in Retry-After")
				e.header = http.Header{"Retry-After": {ceilSeconds(d.RetryAfter)}}
				writeProblem(w, e)
				return
			}
			h(w, r)
		})
	}
}

// setRateLimitHeaders sets RateLimit-Limit (the burst), RateLimit-Remaining
// and RateLimit-Reset (seconds until the budget is full again).
func setRateLimitHeaders(h http.Header, d ratelimit.Decision) {
	if d.Limit <= 0 {
		return
	}
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(max(d.Remaining, 0)))
	h.Set("RateLimit-Reset", ceilSeconds(d.Reset))
}

// ceilSeconds renders d as whole seconds, rounded up (at least 1 when d > 0).
func ceilSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}
