package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Defaults for RedisOptions.
const (
	DefaultKeyPrefix    = "bulkhead:ratelimit:"
	DefaultRedisTimeout = 250 * time.Millisecond
	DefaultRetryBackoff = time.Second
)

// gcra is the generic cell rate algorithm, atomic in Redis. The key holds
// the tenant's theoretical arrival time (TAT) in microseconds of Redis's
// clock, so that every server instance uses one clock.
//
// KEYS[1]: the tenant's key. ARGV[1]: emission interval T (µs per request),
// ARGV[2]: burst. Returns {allowed, remaining, retry_after_us, reset_us}.
var gcra = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tau = T * burst
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + T
local allow_at = new_tat - tau
if now < allow_at then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, math.floor((now - allow_at) / T), 0, math.ceil(new_tat - now)}
`)

// RedisOptions configures NewRedis.
type RedisOptions struct {
	// Client is the Redis client (required). Redis does not close it.
	Client redis.UniversalClient
	// KeyPrefix is put before each tenant id to make its key; default
	// DefaultKeyPrefix.
	KeyPrefix string
	// Timeout bounds one Redis round trip; default DefaultRedisTimeout.
	Timeout time.Duration
	// Instances is the number of server instances sharing the limits
	// (at least 1). While Redis is unreachable each instance allows
	// 1/Instances of every tenant's rate and burst, so that the fleet as
	// a whole stays near the limit.
	Instances int
	// FailClosed makes Allow return ErrUnavailable while Redis is
	// unreachable, instead of falling back to local buckets.
	FailClosed bool
	// RetryBackoff is how long after a failed Redis call the limiter
	// goes straight to the fallback without trying Redis again (so an
	// outage does not add a timeout to every request); default
	// DefaultRetryBackoff.
	RetryBackoff time.Duration
	// Now is the clock for the fallback buckets and the backoff
	// (time.Now if nil). Redis's own clock drives the shared limits.
	Now func() time.Time
	// Logger receives one line when Redis becomes unreachable and one
	// when it is back (slog.Default if nil).
	Logger *slog.Logger
}

// Redis is a Limiter whose buckets live in Redis (GCRA), shared by every
// server instance that uses the same Redis and key prefix. It is safe for
// concurrent use.
type Redis struct {
	opts     RedisOptions
	fallback *Local

	mu        sync.Mutex
	down      bool      // in an outage (logged once)
	nextRetry time.Time // while down: no Redis call before this
}

// NewRedis returns a Redis limiter.
func NewRedis(opts RedisOptions) (*Redis, error) {
	if opts.Client == nil {
		return nil, errors.New("ratelimit: RedisOptions.Client is required")
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = DefaultKeyPrefix
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultRedisTimeout
	}
	if opts.Instances < 1 {
		opts.Instances = 1
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = DefaultRetryBackoff
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Redis{opts: opts, fallback: NewLocal(LocalOptions{Now: opts.Now})}, nil
}

// Key returns the Redis key of tenant id's budget.
func (r *Redis) Key(id tenant.ID) string { return r.opts.KeyPrefix + id.String() }

// Allow takes one request from id's shared budget. While Redis is
// unreachable it answers from local buckets at 1/Instances of the limits,
// or returns ErrUnavailable if FailClosed. An error of ctx itself is
// returned as is.
func (r *Redis) Allow(ctx context.Context, id tenant.ID, l limits.Limits) (Decision, error) {
	if _, err := tenant.Parse(id.String()); err != nil {
		return Decision{}, fmt.Errorf("ratelimit: %w", err)
	}
	rate, burst, ok := params(l)
	if !ok {
		return unlimited, nil
	}
	if r.skipRedis() {
		return r.degraded(ctx, id, l)
	}
	d, err := r.shared(ctx, id, rate, burst)
	if err == nil {
		r.up()
		return d, nil
	}
	if ctx.Err() != nil {
		return Decision{}, ctx.Err()
	}
	r.failed(err)
	return r.degraded(ctx, id, l)
}

// shared runs the GCRA script.
func (r *Redis) shared(ctx context.Context, id tenant.ID, rate float64, burst int) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	interval := math.Max(1, math.Round(1e6/rate)) // µs per request
	res, err := gcra.Run(ctx, r.opts.Client, []string{r.Key(id)}, int64(interval), burst).Int64Slice()
	if err != nil {
		return Decision{}, err
	}
	if len(res) != 4 {
		return Decision{}, fmt.Errorf("ratelimit: unexpected script reply %v", res)
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return Decision{
		Allowed:    res[0] == 1,
		Limit:      burst,
		Remaining:  int(min(res[1], int64(burst))),
		RetryAfter: us(res[2]),
		Reset:      us(res[3]),
	}, nil
}

// degraded answers while Redis is unreachable.
func (r *Redis) degraded(ctx context.Context, id tenant.ID, l limits.Limits) (Decision, error) {
	if r.opts.FailClosed {
		return Decision{}, ErrUnavailable
	}
	n := r.opts.Instances
	l.RequestsPerSecond /= float64(n)
	l.Burst = max(1, l.Burst/n)
	return r.fallback.Allow(ctx, id, l)
}

// skipRedis reports whether Redis failed recently enough not to be tried.
func (r *Redis) skipRedis() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down && r.opts.Now().Before(r.nextRetry)
}

// failed records a failed Redis call; the first of an outage is logged.
func (r *Redis) failed(err error) {
	r.mu.Lock()
	first := !r.down
	r.down, r.nextRetry = true, r.opts.Now().Add(r.opts.RetryBackoff)
	r.mu.Unlock()
	if !first {
		return
	}
	if r.opts.FailClosed {
		r.opts.Logger.Error("rate limiter: Redis unreachable; refusing rate-limited requests (fail closed) until it is back",
			slog.String("error", err.Error()))
		return
	}
	r.opts.Logger.Warn("rate limiter: Redis unreachable; using local limits divided by the instance count until it is back",
		slog.String("error", err.Error()), slog.Int("instances", r.opts.Instances))
}

// up records a successful Redis call; the end of an outage is logged.
func (r *Redis) up() {
	r.mu.Lock()
	was := r.down
	r.down = false
	r.mu.Unlock()
	if was {
		r.opts.Logger.Info("rate limiter: Redis reachable again; limits are shared again")
	}
}
