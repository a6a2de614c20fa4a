package ratelimit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// testRedis returns a client for BULKHEAD_TEST_REDIS and a key prefix
// unique to the test, whose keys are deleted afterwards.
func testRedis(t *testing.T) (redis.UniversalClient, string) {
	t.Helper()
	url := os.Getenv("BULKHEAD_TEST_REDIS")
	if url == "" {
		t.Skip("Redis tests need a Redis server: set BULKHEAD_TEST_REDIS=redis://127.0.0.1:6379/0 (.ci/run does)")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("BULKHEAD_TEST_REDIS: %v", err)
	}
	c := redis.NewClient(opt)
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at BULKHEAD_TEST_REDIS does not answer: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "bulkhead-test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := c.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
		c.Close()
	})
	return c, prefix
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRedisInstancesShareATenantsBudget(t *testing.T) {
	c, prefix := testRedis(t)
	a, _ := NewRedis(RedisOptions{Client: c, KeyPrefix: prefix})
	b, _ := NewRedis(RedisOptions{Client: c, KeyPrefix: prefix})
	li := lim(0.001, 5) // one token per 1000 s: nothing refills during the test
	for i, l := range []Limiter{a, b, a, b, a} {
		d := allow(t, l, "acme", li)
		if !d.Allowed || d.Limit != 5 || d.Remaining != 4-i {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i, d, 4-i)
		}
		if d.Reset <= 0 {
			t.Fatalf("request %d: Reset %v", i, d.Reset)
		}
	}
	for _, l := range []Limiter{a, b} {
		d := allow(t, l, "acme", li)
		if d.Allowed || d.Remaining != 0 {
			t.Fatalf("past the shared burst: %+v, want refused", d)
		}
		if d.RetryAfter < 990*time.Second || d.RetryAfter > 1000*time.Second {
			t.Fatalf("RetryAfter = %v, want about 1000s", d.RetryAfter)
		}
	}
	if n, _ := c.Exists(context.Background(), a.Key(tenant.MustParse("acme"))).Result(); n != 1 {
		t.Fatalf("no key %s in Redis", a.Key(tenant.MustParse("acme")))
	}
	if ttl, _ := c.PTTL(context.Background(), a.Key(tenant.MustParse("acme"))).Result(); ttl <= 0 {
		t.Fatalf("the tenant's key has no expiry (PTTL %v): idle tenants would stay in Redis", ttl)
	}
}

func TestRedisTenantsAreIndependent(t *testing.T) {
	c, prefix := testRedis(t)
	l, _ := NewRedis(RedisOptions{Client: c, KeyPrefix: prefix})
	li := lim(0.001, 3)
	for range 10 {
		allow(t, l, "noisy", li)
	}
	if d := allow(t, l, "noisy", li); d.Allowed {
		t.Fatalf("noisy tenant still allowed: %+v", d)
	}
	for i := range 3 {
		if d := allow(t, l, "quiet", li); !d.Allowed || d.Remaining != 2-i {
			t.Fatalf("quiet tenant request %d: %+v", i, d)
		}
	}
}

func TestRedisRefusesAnInvalidTenant(t *testing.T) {
	c, prefix := testRedis(t)
	l, _ := NewRedis(RedisOptions{Client: c, KeyPrefix: prefix})
	if _, err := l.Allow(context.Background(), tenant.ID{}, lim(1, 1)); !errors.Is(err, tenant.ErrInvalid) {
		t.Fatalf("zero tenant id: err %v, want tenant.ErrInvalid", err)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// unreachable returns a client for a Redis that is stopped: a closed port.
func unreachable(t *testing.T) redis.UniversalClient {
	c := redis.NewClient(&redis.Options{Addr: closedPort(t), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisDownFailsOpenWithLocalLimitsPerInstance(t *testing.T) {
	var logs logBuffer
	clk := newClock()
	l, _ := NewRedis(RedisOptions{Client: unreachable(t), Instances: 3, Now: clk.now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	li := lim(0.003, 9) // a third each: burst 3 at 0.001/s
	for i := range 3 {
		d := allow(t, l, "acme", li)
		if !d.Allowed || d.Limit != 3 || d.Remaining != 2-i {
			t.Fatalf("request %d with Redis down: %+v, want allowed from a local burst of 3", i, d)
		}
		clk.add(2 * DefaultRetryBackoff) // every request tries Redis again
	}
	if d := allow(t, l, "acme", li); d.Allowed {
		t.Fatalf("past the local share of the burst: %+v", d)
	}
	out := logs.String()
	if n := strings.Count(out, "Redis unreachable"); n != 1 {
		t.Fatalf("logged the outage %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "instances=3") {
		t.Errorf("the outage log does not name the instance count:\n%s", out)
	}
}

func TestRedisDownFailsClosed(t *testing.T) {
	var logs logBuffer
	l, _ := NewRedis(RedisOptions{Client: unreachable(t), FailClosed: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for range 3 {
		if d, err := l.Allow(context.Background(), tenant.MustParse("acme"), lim(100, 100)); !errors.Is(err, ErrUnavailable) || d.Allowed {
			t.Fatalf("Redis down, fail closed: %+v, %v; want ErrUnavailable", d, err)
		}
	}
	if n := strings.Count(logs.String(), "fail closed"); n != 1 {
		t.Fatalf("logged the outage %d times, want once:\n%s", n, logs.String())
	}
}

// proxy forwards TCP connections to target until stopped; stop closes the
// listener and every connection, as a Redis that goes away would.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(t *testing.T, addr, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) stop() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestRedisOutageAndRecovery(t *testing.T) {
	c, prefix := testRedis(t)
	target := c.(*redis.Client).Options().Addr
	addr := closedPort(t)
	p := startProxy(t, addr, target)
	pc := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer pc.Close()
	var logs logBuffer
	clk := newClock()
	l, _ := NewRedis(RedisOptions{Client: pc, KeyPrefix: prefix, Now: clk.now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	li := lim(0.001, 4)
	allow(t, l, "acme", li) // shared: 3 left in Redis

	p.stop() // Redis "stops"
	for i := range 4 {
		if d := allow(t, l, "acme", li); !d.Allowed || d.Remaining != 3-i {
			t.Fatalf("outage request %d: %+v, want allowed from local buckets", i, d)
		}
	}
	if n := strings.Count(logs.String(), "Redis unreachable"); n != 1 {
		t.Fatalf("logged the outage %d times, want once:\n%s", n, logs.String())
	}

	startProxy(t, addr, target) // Redis is back
	clk.add(2 * DefaultRetryBackoff)
	d := allow(t, l, "acme", li)
	if !d.Allowed || d.Remaining != 2 {
		t.Fatalf("after recovery: %+v, want the shared budget (2 left)", d)
	}
	if !strings.Contains(logs.String(), "Redis reachable again") {
		t.Fatalf("the recovery was not logged:\n%s", logs.String())
	}
}
