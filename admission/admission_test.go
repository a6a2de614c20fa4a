package admission_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/admission"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// staticLimits is a limits.Source from a map (until the limits Resolver
// exists).
type staticLimits map[string]limits.Limits

func (s staticLimits) For(_ context.Context, id tenant.ID) (limits.Limits, error) {
	return s[id.String()], nil
}

var (
	ta = tenant.MustParse("tenant-a")
	tb = tenant.MustParse("tenant-b")
	tc = tenant.MustParse("tenant-c")
)

// queue starts a waiter for id and returns once it is queued; admitted
// receives its release func.
func queue(t *testing.T, c *admission.Controller, ctx context.Context, id tenant.ID, admitted chan<- func(), errs chan error) {
	t.Helper()
	before := c.Queued(id)
	go func() {
		rel, err := c.Acquire(ctx, id)
		if err != nil {
			errs <- err
			return
		}
		admitted <- rel
	}()
	for c.Queued(id) == before {
		select {
		case err := <-errs:
			t.Fatalf("acquire failed instead of queueing: %v", err)
		default:
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func mustAcquire(t *testing.T, c *admission.Controller, id tenant.ID) func() {
	t.Helper()
	rel, err := c.Acquire(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// TestWeightedAdmission: under a global cap of one, backlogged tenants are
// admitted in weighted turns (weights 1, 3) — within ±5% over many slots.
func TestWeightedAdmission(t *testing.T) {
	src := staticLimits{
		"tenant-a": {MaxConcurrent: 10, Weight: 1, QueueDepth: 1000},
		"tenant-b": {MaxConcurrent: 10, Weight: 3, QueueDepth: 1000},
	}
	c := admission.New(admission.Options{Capacity: 1, Limits: src, MaxWait: time.Hour})
	hold := mustAcquire(t, c, tc)
	admitted := make(chan func(), 1)
	errs := make(chan error, 1)
	order := make(chan tenant.ID, 1)
	const per = 200
	for i := 0; i < per; i++ {
		for _, id := range []tenant.ID{ta, tb} {
			before := c.Queued(id)
			go func() {
				rel, err := c.Acquire(context.Background(), id)
				if err != nil {
					errs <- err
					return
				}
				order <- id
				admitted <- rel
			}()
			for c.Queued(id) == before {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	hold()
	counts := map[tenant.ID]int{}
	// The first 200 admissions happen while both are backlogged.
	for i := 0; i < 2*per; i++ {
		select {
		case id := <-order:
			if i < 200 {
				counts[id]++
			}
			(<-admitted)()
		case err := <-errs:
			t.Fatal(err)
		}
	}
	for id, share := range map[tenant.ID]float64{ta: 0.25, tb: 0.75} {
		want := 200 * share
		if math.Abs(float64(counts[id])-want) > 0.05*want {
			t.Errorf("%s: %d of the first 200 admissions, want %.0f ±5%%", id, counts[id], want)
		}
	}
	if s := c.Stats(); s.InFlight != 0 || s.Queued != 0 {
		t.Errorf("stats after drain = %+v, want zero", s)
	}
}

// TestQueueBound: a tenant at its concurrency limit queues up to its
// QueueDepth, then gets ErrTenantOverloaded, while another tenant is still
// admitted at once.
func TestQueueBound(t *testing.T) {
	var rejected []string
	var mu sync.Mutex
	src := staticLimits{"tenant-a": {MaxConcurrent: 2, Weight: 1, QueueDepth: 3}}
	c := admission.New(admission.Options{Capacity: 10, Limits: src, MaxWait: time.Hour,
		OnReject: func(id tenant.ID, reason string) {
			mu.Lock()
			rejected = append(rejected, id.String()+":"+reason)
			mu.Unlock()
		}})
	r1, r2 := mustAcquire(t, c, ta), mustAcquire(t, c, ta)
	admitted, errs := make(chan func(), 3), make(chan error, 3)
	for i := 0; i < 3; i++ {
		queue(t, c, context.Background(), ta, admitted, errs)
	}
	if _, err := c.Acquire(context.Background(), ta); !errors.Is(err, admission.ErrTenantOverloaded) {
		t.Fatalf("4th waiter: err %v, want ErrTenantOverloaded", err)
	}
	rb := mustAcquire(t, c, tb) // another tenant is not affected
	rb()
	r1()
	(<-admitted)()
	r2()
	(<-admitted)()
	(<-admitted)()
	mu.Lock()
	defer mu.Unlock()
	if len(rejected) != 1 || rejected[0] != "tenant-a:queue_full" {
		t.Errorf("rejections %v, want [tenant-a:queue_full]", rejected)
	}
}

// TestCancelRemovesWaiter: a cancelled waiter leaves the queue and its
// place; the next waiter gets the slot.
func TestCancelRemovesWaiter(t *testing.T) {
	c := admission.New(admission.Options{Capacity: 1, MaxWait: time.Hour})
	hold := mustAcquire(t, c, tc)
	ctx, cancel := context.WithCancel(context.Background())
	admitted, errs := make(chan func(), 2), make(chan error, 2)
	queue(t, c, ctx, ta, admitted, errs)
	queue(t, c, context.Background(), tb, admitted, errs)
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if n := c.Queued(ta); n != 0 {
		t.Fatalf("cancelled waiter still queued (%d)", n)
	}
	hold()
	(<-admitted)()
	if s := c.Stats(); s.InFlight != 0 || s.Queued != 0 {
		t.Errorf("stats = %+v, want zero", s)
	}
}

// TestWaitBound: a waiter past MaxWait gets ErrOverloaded when the server
// is saturated by others, ErrTenantOverloaded when it is at its own limit.
func TestWaitBound(t *testing.T) {
	src := staticLimits{"tenant-a": {MaxConcurrent: 1, Weight: 1, QueueDepth: 5}}
	c := admission.New(admission.Options{Capacity: 1, Limits: src, MaxWait: time.Millisecond})
	hold := mustAcquire(t, c, tc)
	if _, err := c.Acquire(context.Background(), tb); !errors.Is(err, admission.ErrOverloaded) {
		t.Fatalf("saturated: %v, want ErrOverloaded", err)
	}
	hold()
	ra := mustAcquire(t, c, ta)
	if _, err := c.Acquire(context.Background(), ta); !errors.Is(err, admission.ErrTenantOverloaded) {
		t.Fatalf("at own limit: %v, want ErrTenantOverloaded", err)
	}
	ra()
}

// TestNoStarvationUnderFlood: with one tenant keeping a deep backlog, a
// light tenant's waiter is admitted within one round of releases.
func TestNoStarvationUnderFlood(t *testing.T) {
	src := staticLimits{
		"tenant-a": {MaxConcurrent: 100, Weight: 8, QueueDepth: 100},
		"tenant-b": {MaxConcurrent: 100, Weight: 1, QueueDepth: 100},
	}
	c := admission.New(admission.Options{Capacity: 1, Limits: src, MaxWait: time.Hour})
	hold := mustAcquire(t, c, tc)
	aAdm, bAdm, errs := make(chan func(), 100), make(chan func(), 1), make(chan error, 101)
	for i := 0; i < 50; i++ {
		queue(t, c, context.Background(), ta, aAdm, errs)
	}
	queue(t, c, context.Background(), tb, bAdm, errs)
	hold()
	for i := 0; i < 10; i++ {
		select {
		case rel := <-bAdm:
			rel()
			for c.Stats().Queued > 0 || c.Stats().InFlight > 0 {
				(<-aAdm)()
			}
			return
		case rel := <-aAdm:
			rel()
		}
	}
	t.Fatal("light tenant not admitted within one round")
}

// TestFIFO: with fairness off, waiters are admitted in arrival order
// whatever their tenant.
func TestFIFO(t *testing.T) {
	c := admission.New(admission.Options{Capacity: 1, FIFO: true, MaxWait: time.Hour})
	hold := mustAcquire(t, c, tc)
	type adm struct {
		n   int
		rel func()
	}
	order, errs := make(chan adm, 3), make(chan error, 3)
	for i, id := range []tenant.ID{ta, ta, tb} {
		before := c.Stats().Queued
		go func() {
			rel, err := c.Acquire(context.Background(), id)
			if err != nil {
				errs <- err
				return
			}
			order <- adm{i, rel}
		}()
		for c.Stats().Queued == before {
			time.Sleep(50 * time.Microsecond)
		}
	}
	hold()
	for i := 0; i < 3; i++ {
		select {
		case a := <-order:
			if a.n != i {
				t.Errorf("admission %d went to waiter %d", i, a.n)
			}
			a.rel()
		case err := <-errs:
			t.Fatal(err)
		}
	}
}

// TestQueuedTop: the tenants with the longest queues, most first, and the
// rest summed.
func TestQueuedTop(t *testing.T) {
	c := admission.New(admission.Options{Capacity: 1, MaxWait: time.Hour})
	hold := mustAcquire(t, c, ta)
	ctx, cancel := context.WithCancel(context.Background())
	admitted, errs := make(chan func(), 16), make(chan error, 16)
	for id, n := range map[tenant.ID]int{ta: 3, tb: 1, tc: 2} {
		for range n {
			queue(t, c, ctx, id, admitted, errs)
		}
	}
	top, other := c.QueuedTop(2)
	if len(top) != 2 || top[0] != (admission.TenantQueue{Tenant: ta, Queued: 3}) ||
		top[1] != (admission.TenantQueue{Tenant: tc, Queued: 2}) || other != 1 {
		t.Errorf("QueuedTop(2) = %v, other %d; want [tenant-a:3 tenant-c:2], other 1", top, other)
	}
	if top, other := c.QueuedTop(10); len(top) != 3 || other != 0 {
		t.Errorf("QueuedTop(10) = %v, other %d; want all three, other 0", top, other)
	}
	cancel()
	for range 6 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
	}
	hold()
	if top, other := c.QueuedTop(10); len(top) != 0 || other != 0 {
		t.Errorf("after the waiters left: %v, other %d; want nothing", top, other)
	}
}
