package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

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
	s.metrics.Registerer().MustRegister(s.throttled)
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
	redis.SetLogger(redisLogger{s.log})
	c := redis.NewClient(ro)
	s.checkRedis(c, ro.Addr, opts)
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

// redisStartTimeout bounds the check of Redis at start.
const redisStartTimeout = 3 * time.Second

// checkRedis pings Redis once at start and, if it does not answer, logs an
// error naming its address (never the URL, which may hold a password) and
// what the rate limiter does meanwhile. The server starts anyway: the
// limiter is built to outlive a Redis outage (local limits, or 503s when
// fail-closed), and an instance restarted during one must still serve.
func (s *Server) checkRedis(c *redis.Client, addr string, opts Options) {
	ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
	defer cancel()
	err := c.Ping(ctx).Err()
	if err == nil {
		s.log.Info("redis reachable; rate limits are shared", slog.String("addr", addr))
		return
	}
	meanwhile := "rate limits are kept in this process alone until it answers"
	if opts.Instances > 1 {
		meanwhile = fmt.Sprintf("each instance keeps 1/%d of every tenant's rate and burst until it answers", opts.Instances)
	}
	if opts.RateLimitFailClosed {
		meanwhile = "rate-limited requests get 503 until it answers (--ratelimit-fail-closed)"
	}
	s.log.Error("redis is not reachable at "+addr+"; check --redis (BULKHEAD_REDIS) and that Redis runs there: "+meanwhile,
		slog.String("addr", addr), slog.String("error", err.Error()))
}

// redisLogger sends go-redis's own log lines (connection pool failures,
// redis.SetLogger) to the server's slog logger as warnings, so that no
// plain-text line lands in the JSON log. go-redis has one logger per
// process: the last server opened with a Redis URL receives them.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.Log(ctx, slog.LevelWarn, strings.TrimSpace(fmt.Sprintf(format, v...)), slog.String("component", "redis"))
}
