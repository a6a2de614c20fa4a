package sched_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulkhead-dev/bulkhead/sched"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func ids(n int) []tenant.ID {
	out := make([]tenant.ID, n)
	for i := range out {
		out[i] = tenant.MustParse(fmt.Sprintf("t%03d", i))
	}
	return out
}

// TestSharesFollowWeights: with every tenant always backlogged, each
// tenant's share of the work is within 2% of its weight's share, for unit
// and for uneven batch costs.
func TestSharesFollowWeights(t *testing.T) {
	for _, tc := range []struct {
		name string
		cost func(i int) int
	}{
		{"unit cost", func(int) int { return 1 }},
		{"uneven cost", func(i int) int { return 1 + i%7 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tenants := ids(4)
			weights := map[tenant.ID]int{tenants[0]: 1, tenants[1]: 2, tenants[2]: 3, tenants[3]: 6}
			s := sched.New(sched.Options{Weight: func(id tenant.ID) int { return weights[id] }})
			for _, id := range tenants {
				s.Ready(id)
			}
			work := map[tenant.ID]int{}
			total := 0
			ctx := context.Background()
			for i := range 60_000 {
				id, err := s.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				c := tc.cost(i)
				work[id] += c
				total += c
				s.Done(id, sched.Outcome{Cost: c, More: true})
			}
			for id, w := range weights {
				want := float64(total) * float64(w) / 12
				if math.Abs(float64(work[id])-want) > 0.02*want {
					t.Errorf("%s (weight %d): work %d, want %.0f ±2%%", id, w, work[id], want)
				}
			}
		})
	}
}

// TestReadyTwiceQueuedOnce: Ready on a queued tenant does not queue it
// again, and Ready on a running one queues it once after its batch.
func TestReadyTwiceQueuedOnce(t *testing.T) {
	s := sched.New(sched.Options{})
	a := tenant.MustParse("acme")
	s.Ready(a)
	s.Ready(a)
	s.Ready(tenant.ID{}) // the zero ID never queues
	if n := s.Queued(); n != 1 {
		t.Fatalf("queued %d, want 1", n)
	}
	ctx := context.Background()
	id, _ := s.Next(ctx)
	s.Ready(a)
	s.Ready(a)
	if n := s.Queued(); n != 0 {
		t.Fatalf("a running tenant is queued (%d): it would run twice at once", n)
	}
	s.Done(id, sched.Outcome{})
	if n := s.Queued(); n != 1 {
		t.Fatalf("after the batch: queued %d, want 1 (Ready while running)", n)
	}
	id, _ = s.Next(ctx)
	s.Done(id, sched.Outcome{})
	if n := s.Queued(); n != 0 {
		t.Fatalf("queued %d after the last batch, want 0", n)
	}
}

// TestOneBatchPerTenantAtATime: many workers, many tenants, Ready from
// many goroutines: a tenant never has two batches at once, and every
// tenant's batches see its work in order.
func TestOneBatchPerTenantAtATime(t *testing.T) {
	tenants := ids(20)
	s := sched.New(sched.Options{})
	var running [20]atomic.Int32
	var pending [20]atomic.Int64 // work items made
	var done [20]int64           // work items handled, only by the tenant's batch
	var overlap atomic.Bool
	var handled atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		s.Run(ctx, 8, func(ctx context.Context) sched.Outcome {
			id, err := tenant.FromContext(ctx)
			if err != nil {
				t.Error("batch without a tenant in its context")
				return sched.Outcome{}
			}
			i := indexOf(tenants, id)
			if running[i].Add(1) != 1 {
				overlap.Store(true)
			}
			defer running[i].Add(-1)
			n := min(pending[i].Load()-done[i], 5)
			done[i] += n
			handled.Add(n)
			return sched.Outcome{Cost: int(n), More: done[i] < pending[i].Load()}
		})
	})
	var producers sync.WaitGroup
	for p := range 4 {
		producers.Go(func() {
			for k := range 500 {
				i := (p*7 + k) % 20
				pending[i].Add(1)
				s.Ready(tenants[i])
			}
		})
	}
	producers.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for handled.Load() < 2000 && time.Now().Before(deadline) { // a lost Ready leaves work undone
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	if overlap.Load() {
		t.Fatal("a tenant had two batches running at once")
	}
	for i := range tenants {
		if done[i] != pending[i].Load() {
			t.Errorf("%s: handled %d of %d items (a Ready was lost)", tenants[i], done[i], pending[i].Load())
		}
	}
}

func indexOf(tenants []tenant.ID, id tenant.ID) int {
	for i, x := range tenants {
		if x == id {
			return i
		}
	}
	panic("unknown tenant " + id.String())
}

// TestIdleTenantGetsNoCredit: a tenant that worked alone for a long time
// does not make a newcomer wait, and the newcomer does not get the idle
// time as credit to run alone afterwards: they alternate.
func TestIdleTenantGetsNoCredit(t *testing.T) {
	s := sched.New(sched.Options{})
	a, b := tenant.MustParse("busy"), tenant.MustParse("newcomer")
	ctx := context.Background()
	s.Ready(a)
	for range 1000 {
		id, _ := s.Next(ctx)
		s.Done(id, sched.Outcome{More: true})
	}
	s.Ready(b)
	var order []string
	for range 10 {
		id, _ := s.Next(ctx)
		order = append(order, id.String())
		s.Done(id, sched.Outcome{More: true})
	}
	got := map[string]int{}
	for _, o := range order[:2] {
		got[o]++
	}
	if got["newcomer"] != 1 {
		t.Fatalf("the newcomer must run within one batch: %v", order)
	}
	for i := 1; i < len(order); i++ {
		if order[i] == order[i-1] {
			t.Fatalf("two tenants backlogged with equal weights should alternate: %v", order)
		}
	}
}

// TestBurstCannotMonopolise: a tenant with a huge backlog and a weight of
// 1 leaves a weight-1 tenant its half, and a weight-3 tenant three times
// as much as itself.
func TestBurstCannotMonopolise(t *testing.T) {
	burst, quiet, gold := tenant.MustParse("burst"), tenant.MustParse("quiet"), tenant.MustParse("gold")
	w := map[tenant.ID]int{gold: 3}
	s := sched.New(sched.Options{Weight: func(id tenant.ID) int { return max(w[id], 1) }})
	ctx := context.Background()
	s.Ready(burst)
	for range 100 {
		id, _ := s.Next(ctx)
		s.Done(id, sched.Outcome{Cost: 500, More: true})
	}
	s.Ready(quiet)
	s.Ready(gold)
	n := map[tenant.ID]int{}
	for range 500 {
		id, _ := s.Next(ctx)
		n[id]++
		s.Done(id, sched.Outcome{Cost: 500, More: true})
	}
	if n[quiet] < 95 || n[quiet] > 105 || n[gold] < 290 || n[gold] > 310 || n[burst] < 95 || n[burst] > 105 {
		t.Fatalf("batches %v, want about burst 100, quiet 100, gold 300", map[string]int{"burst": n[burst], "quiet": n[quiet], "gold": n[gold]})
	}
}

// TestDelayHoldsTheTenantBack: a batch that ends with a Delay keeps its
// tenant out of the queue until the delay is over, even when it is made
// ready meanwhile; the Ready is not lost.
func TestDelayHoldsTheTenantBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sched.New(sched.Options{})
		a, b := tenant.MustParse("limited"), tenant.MustParse("other")
		ctx := t.Context()
		s.Ready(a)
		id, _ := s.Next(ctx)
		s.Done(id, sched.Outcome{Delay: time.Second})
		s.Ready(a)
		s.Ready(b)
		if got, _ := s.Next(ctx); got != b {
			t.Fatalf("got %s, want the other tenant while limited is held back", got)
		}
		s.Done(b, sched.Outcome{})
		time.Sleep(999 * time.Millisecond)
		synctest.Wait()
		if n := s.Queued(); n != 0 {
			t.Fatalf("queued %d before the delay is over", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := s.Queued(); n != 1 {
			t.Fatalf("queued %d after the delay, want 1 (the Ready made during it)", n)
		}
		// Without a Ready or More during the delay, nothing is queued.
		id, _ = s.Next(ctx)
		s.Done(id, sched.Outcome{Delay: time.Second})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := s.Queued(); n != 0 {
			t.Fatalf("queued %d: a delayed tenant with no work came back", n)
		}
	})
}

// TestNextWaitsAndStops: Next blocks until a tenant is ready, and returns
// the context's error or ErrClosed.
func TestNextWaitsAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := sched.New(sched.Options{})
		got := make(chan tenant.ID, 1)
		go func() {
			id, _ := s.Next(context.Background())
			got <- id
		}()
		synctest.Wait()
		select {
		case id := <-got:
			t.Fatalf("Next returned %s with nothing ready", id)
		default:
		}
		s.Ready(tenant.MustParse("acme"))
		if id := <-got; id.String() != "acme" {
			t.Fatalf("got %s", id)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next after the deadline: %v", err)
		}
		errc := make(chan error, 1)
		go func() { _, err := s.Next(context.Background()); errc <- err }()
		synctest.Wait()
		s.Close()
		if err := <-errc; !errors.Is(err, sched.ErrClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
	})
}
