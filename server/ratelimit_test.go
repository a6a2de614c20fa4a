package server_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// fixedLimits gives every tenant the same rate limit.
type fixedLimits struct{ l limits.Limits }

func (f fixedLimits) For(context.Context, tenant.ID) (limits.Limits, error) { return f.l, nil }

// tinyBurst: 3 requests, then one per 1000 s (nothing refills in a test).
var tinyBurst = fixedLimits{limits.Limits{RequestsPerSecond: 0.001, Burst: 3}}

func checkRateLimited(t *testing.T, e *env) {
	t.Helper()
	noisy := e.tenantWithKey("noisy", "pooled")
	quiet := e.tenantWithKey("quiet", "pooled")
	for i := range 3 {
		r := e.req("GET", "/v1/collections", noisy, nil)
		want(t, r, 200, "")
		if r.header.Get("RateLimit-Limit") != "3" || r.header.Get("RateLimit-Remaining") != strconv.Itoa(2-i) ||
			r.header.Get("RateLimit-Reset") == "" {
			t.Fatalf("request %d: rate limit headers %v", i, r.header)
		}
	}
	r := e.req("GET", "/v1/collections", noisy, nil)
	want(t, r, 429, "rate_limited")
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 990 || ra > 1000 {
		t.Fatalf("Retry-After %q, want about 1000", r.header.Get("Retry-After"))
	}
	if r.header.Get("RateLimit-Limit") != "3" || r.header.Get("RateLimit-Remaining") != "0" || r.header.Get("RateLimit-Reset") == "" {
		t.Fatalf("429 rate limit headers %v", r.header)
	}
	// Another tenant is unaffected.
	r = e.req("GET", "/v1/collections", quiet, nil)
	want(t, r, 200, "")
	if r.header.Get("RateLimit-Remaining") != "2" {
		t.Fatalf("quiet tenant: RateLimit-Remaining %q, want 2", r.header.Get("RateLimit-Remaining"))
	}
	// The control plane is not tenant-limited.
	want(t, e.req("GET", "/v1/admin/tenants/noisy", e.op, nil), 200, "")
	// The refusal is counted for the noisy tenant only.
	m := string(e.req("GET", "/metrics", "", nil).body)
	if !strings.Contains(m, `bulkhead_ratelimit_throttled_total{reason="rate_limited",tenant="noisy"}`) ||
		strings.Contains(m, `bulkhead_ratelimit_throttled_total{reason="rate_limited",tenant="quiet"}`) {
		t.Fatalf("/metrics throttled counter:\n%s", m)
	}
}

// TestRateLimitOnByDefault checks that without options every tenant is
// limited by its effective limits (the resolver: tier, then overrides),
// and that DisableRateLimit turns it off.
func TestRateLimitOnByDefault(t *testing.T) {
	e := newEnvIn(t, t.TempDir(), server.Options{})
	defer e.close()
	tok := e.tenantWithKey("acme", "pooled")
	r := e.req("GET", "/v1/collections", tok, nil)
	want(t, r, 200, "")
	if got := r.header.Get("RateLimit-Limit"); got != "100" { // standard tier burst
		t.Fatalf("RateLimit-Limit %q, want 100", got)
	}
	want(t, e.req("PATCH", "/v1/admin/tenants/acme", e.op, `{"limits":{"burst":7}}`), 200, "")
	if got := e.req("GET", "/v1/collections", tok, nil).header.Get("RateLimit-Limit"); got != "7" {
		t.Fatalf("after a burst override: RateLimit-Limit %q, want 7", got)
	}

	off := newEnvIn(t, t.TempDir(), server.Options{DisableRateLimit: true})
	defer off.close()
	tok = off.tenantWithKey("acme", "pooled")
	if r := off.req("GET", "/v1/collections", tok, nil); r.header.Get("RateLimit-Limit") != "" {
		t.Fatalf("DisableRateLimit: headers %v", r.header)
	}
}

func TestRateLimitPerTenant(t *testing.T) {
	e := newEnvIn(t, t.TempDir(), server.Options{RateLimits: tinyBurst})
	defer e.close()
	checkRateLimited(t, e)
}

func TestRateLimitPerTenantInRedis(t *testing.T) {
	url := os.Getenv("BULKHEAD_TEST_REDIS")
	if url == "" {
		t.Skip("set BULKHEAD_TEST_REDIS=redis://127.0.0.1:6379/0 to run the Redis-backed rate limit test (.ci/run does)")
	}
	// Tenant ids repeat across runs: a key prefix of this run's own.
	prefix := "bulkhead-test:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	t.Cleanup(func() { deleteRedisKeys(t, url, prefix) })
	e := newEnvIn(t, t.TempDir(), server.Options{RateLimits: tinyBurst, RedisURL: url, RedisKeyPrefix: prefix})
	defer e.close()
	checkRateLimited(t, e)
}

func TestRateLimitFailsClosedWhenRedisIsDown(t *testing.T) {
	e := newEnvIn(t, t.TempDir(), server.Options{RateLimits: tinyBurst,
		RedisURL: "redis://127.0.0.1:1/0", RateLimitFailClosed: true})
	defer e.close()
	tok := e.tenantWithKey("acme", "pooled")
	r := e.req("GET", "/v1/collections", tok, nil)
	want(t, r, 503, "unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
}

// deleteRedisKeys removes the keys under prefix that a test left in the
// Redis at url.
func deleteRedisKeys(t *testing.T, url, prefix string) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Errorf("BULKHEAD_TEST_REDIS: %v", err)
		return
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err == nil && len(keys) > 0 {
		err = c.Del(ctx, keys...).Err()
	}
	if err != nil {
		t.Errorf("cleaning up Redis keys %s*: %v", prefix, err)
	}
}
