package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/bulkhead-dev/bulkhead/ratelimit"
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
		return nil, &OptionError{Field: "RedisURL", Err: fmt.Errorf("%v (use redis://host:6379/0)", err)}
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
