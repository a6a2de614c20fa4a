package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// clock is a fake clock tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func lim(rps float64, burst int) limits.Limits {
	return limits.Limits{RequestsPerSecond: rps, Burst: burst}
}

func allow(t *testing.T, l Limiter, id string, li limits.Limits) Decision {
	t.Helper()
	d, err := l.Allow(context.Background(), tenant.MustParse(id), li)
	if err != nil {
		t.Fatalf("Allow(%s): %v", id, err)
	}
	return d
}

func TestLocalBurstThenRefuse(t *testing.T) {
	c := newClock()
	l := NewLocal(LocalOptions{Now: c.now})
	li := lim(2, 5) // 2/s, burst 5
	for i := range 5 {
		d := allow(t, l, "acme", li)
		if !d.Allowed || d.Limit != 5 || d.Remaining != 4-i || d.RetryAfter != 0 {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i, d, 4-i)
		}
	}
	d := allow(t, l, "acme", li)
	if d.Allowed || d.Remaining != 0 {
		t.Fatalf("request past the burst: %+v, want refused", d)
	}
	if d.RetryAfter != 500*time.Millisecond {
		t.Errorf("RetryAfter = %v, want 500ms (one token at 2/s)", d.RetryAfter)
	}
	if d.Reset != 2500*time.Millisecond {
		t.Errorf("Reset = %v, want 2.5s (5 tokens at 2/s)", d.Reset)
	}
}

func TestLocalRefill(t *testing.T) {
	c := newClock()
	l := NewLocal(LocalOptions{Now: c.now})
	li := lim(1, 3)
	for range 3 {
		allow(t, l, "acme", li)
	}
	if allow(t, l, "acme", li).Allowed {
		t.Fatal("empty bucket allowed a request")
	}
	c.add(999 * time.Millisecond)
	if d := allow(t, l, "acme", li); d.Allowed {
		t.Fatalf("allowed before a whole token refilled: %+v", d)
	} else if d.RetryAfter != time.Millisecond {
		t.Errorf("RetryAfter = %v, want 1ms", d.RetryAfter)
	}
	c.add(time.Millisecond)
	if d := allow(t, l, "acme", li); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after one second: %+v, want allowed with 0 remaining", d)
	}
	c.add(time.Hour) // refills to the burst, never beyond
	for i := range 3 {
		if !allow(t, l, "acme", li).Allowed {
			t.Fatalf("request %d after an hour refused", i)
		}
	}
	if allow(t, l, "acme", li).Allowed {
		t.Fatal("bucket refilled beyond its burst")
	}
}

func TestLocalTenantsAreIndependent(t *testing.T) {
	c := newClock()
	l := NewLocal(LocalOptions{Now: c.now})
	li := lim(1, 2)
	for range 10 {
		allow(t, l, "noisy", li)
	}
	for i := range 2 {
		if d := allow(t, l, "quiet", li); !d.Allowed || d.Remaining != 1-i {
			t.Fatalf("quiet tenant request %d: %+v", i, d)
		}
	}
}

func TestLocalEvictsIdleFullBucketsOnly(t *testing.T) {
	c := newClock()
	l := NewLocal(LocalOptions{Now: c.now, IdleTimeout: time.Minute})
	for _, id := range []string{"a1", "a2", "a3"} {
		allow(t, l, id, lim(10, 10))
	}
	// slow: 1 token per 1000 s, so it is still not full after the idle timeout.
	allow(t, l, "slow", lim(0.001, 1))
	if n := l.Len(); n != 4 {
		t.Fatalf("Len = %d, want 4", n)
	}
	c.add(2 * time.Minute)
	allow(t, l, "b1", lim(10, 10)) // triggers the sweep
	if n := l.Len(); n != 2 {
		t.Fatalf("Len after idle = %d, want 2 (slow, still refilling, and b1)", n)
	}
	// The slow tenant's empty bucket survived: no free burst from eviction.
	if d := allow(t, l, "slow", lim(0.001, 1)); d.Allowed {
		t.Fatalf("slow tenant got a request through: %+v", d)
	}
	c.add(time.Hour)
	allow(t, l, "b2", lim(10, 10))
	if n := l.Len(); n != 1 {
		t.Fatalf("Len after an hour = %d, want 1 (b2)", n)
	}
}

func TestLocalLimitsChangeKeepsTokens(t *testing.T) {
	c := newClock()
	l := NewLocal(LocalOptions{Now: c.now})
	for range 8 {
		allow(t, l, "acme", lim(1, 10))
	}
	// Down to a burst of 1: the 2 tokens left are capped at 1.
	if d := allow(t, l, "acme", lim(1, 1)); !d.Allowed || d.Limit != 1 {
		t.Fatalf("%+v", d)
	}
	if allow(t, l, "acme", lim(1, 1)).Allowed {
		t.Fatal("tokens above the new burst were kept")
	}
}

func TestLocalNoRateIsUnlimited(t *testing.T) {
	l := NewLocal(LocalOptions{})
	for range 100 {
		if d := allow(t, l, "acme", lim(0, 0)); !d.Allowed || d.Limit != 0 {
			t.Fatalf("%+v", d)
		}
	}
	if l.Len() != 0 {
		t.Fatal("a bucket was made for an unlimited tenant")
	}
}

func TestLocalConcurrentUseNeverExceedsBurst(t *testing.T) {
	c := newClock() // never moves: no refill
	l := NewLocal(LocalOptions{Now: c.now})
	li := lim(1, 50)
	allowed := make(chan bool, 400)
	done := make(chan struct{})
	for range 8 {
		go func() {
			for range 50 {
				d, _ := l.Allow(context.Background(), tenant.MustParse("acme"), li)
				allowed <- d.Allowed
			}
			done <- struct{}{}
		}()
	}
	for range 8 {
		<-done
	}
	close(allowed)
	n := 0
	for a := range allowed {
		if a {
			n++
		}
	}
	if n != 50 {
		t.Fatalf("%d requests allowed, want exactly the burst of 50", n)
	}
}
