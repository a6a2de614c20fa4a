package sched_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/sched"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	ta = tenant.MustParse("tenant-a")
	tb = tenant.MustParse("tenant-b")
)

// TestWeightedOrder: one worker, both tenants backlogged before it starts;
// the first jobs run in weighted turns (1:3 within ±5%).
func TestWeightedOrder(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := sched.New(sched.Options{Workers: 1, MaxPerTenant: 1, Registerer: reg,
		Weight: func(id tenant.ID) int {
			if id == tb {
				return 3
			}
			return 1
		}})
	var mu sync.Mutex
	var order []tenant.ID
	var results []<-chan error
	for i := 0; i < 400; i++ {
		for _, id := range []tenant.ID{ta, tb} {
			results = append(results, s.Submit(context.Background(), id, func(context.Context) error {
				mu.Lock()
				order = append(order, id)
				mu.Unlock()
				return nil
			}))
		}
	}
	if got := queuedSum(t, reg); got != 800 {
		t.Fatalf("queued gauge %v, want 800", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	for _, r := range results {
		if err := <-r; err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	<-done
	n := map[tenant.ID]int{}
	for _, id := range order[:400] {
		n[id]++
	}
	for id, share := range map[tenant.ID]float64{ta: 0.25, tb: 0.75} {
		want := 400 * share
		if math.Abs(float64(n[id])-want) > 0.05*want {
			t.Errorf("%s ran %d of the first 400 jobs, want %.0f ±5%%", id, n[id], want)
		}
	}
}

func queuedSum(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "bulkhead_sched_queued_jobs" {
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// TestPerTenantCap: with two workers and a cap of one, a tenant never has
// two jobs running; the other tenant's job runs alongside.
func TestPerTenantCap(t *testing.T) {
	s := sched.New(sched.Options{Workers: 2, MaxPerTenant: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	release := make(chan struct{})
	started := make(chan tenant.ID, 3)
	job := func(id tenant.ID) sched.Job {
		return func(context.Context) error { started <- id; <-release; return nil }
	}
	r1 := s.Submit(ctx, ta, job(ta))
	r2 := s.Submit(ctx, ta, job(ta))
	r3 := s.Submit(ctx, tb, job(tb))
	got := map[tenant.ID]int{<-started: 1}
	got[<-started]++
	if got[ta] != 1 || got[tb] != 1 {
		t.Fatalf("running %v, want one job of each tenant", got)
	}
	close(release)
	for _, r := range []<-chan error{r1, r2, r3} {
		if err := <-r; err != nil {
			t.Fatal(err)
		}
	}
}

// TestCancelQueuedJob: a job whose context ends while queued never runs
// and reports the context's error; stopping fails the rest with ErrClosed.
func TestCancelQueuedJob(t *testing.T) {
	s := sched.New(sched.Options{Workers: 1})
	jctx, cancel := context.WithCancel(context.Background())
	ran := false // written only by the cancelled job, which must not run
	r := s.Submit(jctx, ta, func(context.Context) error { ran = true; return nil })
	cancel()
	if err := <-r; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled job: %v", err)
	}
	r2 := s.Submit(context.Background(), tb, func(context.Context) error { return nil })
	stopped, stop := context.WithCancel(context.Background())
	stop()
	s.Run(stopped)
	if err := <-r2; err != nil && !errors.Is(err, sched.ErrClosed) {
		t.Fatalf("job at stop: %v", err)
	}
	if err := <-s.Submit(context.Background(), ta, func(context.Context) error { return nil }); !errors.Is(err, sched.ErrClosed) {
		t.Fatalf("submit after stop: %v, want ErrClosed", err)
	}
	if ran {
		t.Error("the cancelled job ran")
	}
}
