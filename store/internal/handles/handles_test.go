package handles

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var errClosed = errors.New("test backend is closed")

// fake is a handle that records whether it was closed while in use.
type fake struct {
	id       tenant.ID
	ref      Ref
	dropping bool

	users     atomic.Int32 // users per the test, not per the set
	closed    atomic.Bool
	badClose  atomic.Bool   // closed while users > 0
	closeWait chan struct{} // if not nil, close blocks until it is closed
}

type env struct {
	mu     sync.Mutex
	open   map[tenant.ID]*fake
	set    *Set[*fake]
	opened atomic.Int32
}

func newEnv(t *testing.T, max int) *env {
	t.Helper()
	e := &env{open: make(map[tenant.ID]*fake)}
	e.set = New(&e.mu, e.open, Config[*fake]{
		Max:      max,
		Closed:   errClosed,
		Ref:      func(f *fake) *Ref { return &f.ref },
		Dropping: func(f *fake) *bool { return &f.dropping },
		Close: func(f *fake) error {
			if f.closeWait != nil {
				<-f.closeWait
			}
			if f.users.Load() > 0 {
				f.badClose.Store(true)
			}
			f.closed.Store(true)
			return nil
		},
	})
	return e
}

func (e *env) acquire(t *testing.T, name string) *fake {
	t.Helper()
	f, err := e.set.Acquire(tenant.MustParse(name), func() (*fake, error) {
		e.opened.Add(1)
		return &fake{id: tenant.MustParse(name)}, nil
	})
	if err != nil {
		t.Fatalf("acquire %s: %v", name, err)
	}
	f.users.Add(1)
	return f
}

func (e *env) release(f *fake) {
	f.users.Add(-1)
	e.set.Release(f)
}

func TestBoundHoldsWhenIdle(t *testing.T) {
	e := newEnv(t, 2)
	var all []*fake
	for i := range 5 {
		f := e.acquire(t, fmt.Sprintf("t%d", i))
		all = append(all, f)
		e.release(f)
		if n := e.set.Len(); n > 2 {
			t.Fatalf("%d open after %d idle tenants, bound 2", n, i+1)
		}
	}
	e.set.Close()() // waits for the evicted handles
	for _, f := range all {
		if !f.closed.Load() {
			t.Fatalf("%s never closed", f.id)
		}
	}
}

func TestLeastRecentlyUsedGoesFirst(t *testing.T) {
	e := newEnv(t, 2)
	for _, n := range []string{"ta", "tb", "ta", "tc"} { // b is least recently used
		e.release(e.acquire(t, n))
	}
	e.mu.Lock()
	_, a := e.open[tenant.MustParse("ta")]
	_, b := e.open[tenant.MustParse("tb")]
	_, c := e.open[tenant.MustParse("tc")]
	e.mu.Unlock()
	if !a || b || !c {
		t.Fatalf("open a=%v b=%v c=%v, want a and c", a, b, c)
	}
	if n := e.opened.Load(); n != 3 {
		t.Fatalf("opened %d times, want 3 (a reused)", n)
	}
}

func TestHandleInUseIsNeverClosed(t *testing.T) {
	e := newEnv(t, 1)
	held := []*fake{e.acquire(t, "ta"), e.acquire(t, "tb"), e.acquire(t, "tc")}
	if n := e.set.Len(); n != 3 {
		t.Fatalf("%d open with 3 in use, want 3 (busy handles stay open)", n)
	}
	e.release(e.acquire(t, "td")) // evicts nothing in use; d itself goes
	for _, f := range held {
		if f.closed.Load() {
			t.Fatalf("%s closed while in use", f.id)
		}
	}
	for _, f := range held {
		e.release(f)
	}
	e.set.Close()()
	if n := e.set.Len(); n != 0 {
		t.Fatalf("%d open after Close", n)
	}
}

func TestConcurrentUseNeverClosesABusyHandle(t *testing.T) {
	const tenants, workers, ops, bound = 6, 8, 200, 2
	e := newEnv(t, bound)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ops {
				f := e.acquire(t, fmt.Sprintf("t%d", (w*7+i*5)%tenants))
				if f.closed.Load() {
					t.Errorf("%s acquired closed", f.id)
				}
				e.release(f)
			}
		}()
	}
	wg.Wait()
	if n := e.set.Len(); n > bound {
		t.Fatalf("%d open once idle, bound %d", n, bound)
	}
	e.set.Close()()
	e.mu.Lock()
	defer e.mu.Unlock()
	for f := range e.set.closing {
		t.Fatalf("%s still closing after Close", f.id)
	}
}

func TestDropWaitsForUsersAndRefusesNewOnes(t *testing.T) {
	e := newEnv(t, 4)
	id := tenant.MustParse("acme")
	f := e.acquire(t, "acme")
	done := make(chan error, 1)
	var removed atomic.Bool
	go func() {
		done <- e.set.Drop(context.Background(), id, Locked, func(h *fake, open bool) error {
			if !open || h != f {
				return fmt.Errorf("remove got %v open=%v", h, open)
			}
			if h.users.Load() > 0 {
				return errors.New("removed while in use")
			}
			removed.Store(true)
			return nil
		})
	}()
	for !e.set.Dropping(id) {
		time.Sleep(time.Millisecond)
	}
	if _, err := e.set.Acquire(id, func() (*fake, error) { return &fake{}, nil }); !errors.Is(err, store.ErrUnknownTenant) {
		t.Fatalf("Acquire while dropping = %v, want ErrUnknownTenant", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Drop returned with a user in flight: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	e.release(f)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !removed.Load() {
		t.Fatal("remove not called")
	}
	if n := e.set.Len(); n != 0 {
		t.Fatalf("%d open after drop", n)
	}
}

func TestUnlockedDropRefusesUsersWhileRemoving(t *testing.T) {
	e := newEnv(t, 4)
	id := tenant.MustParse("acme")
	e.release(e.acquire(t, "acme"))
	err := e.set.Drop(context.Background(), id, Unlocked, func(h *fake, open bool) error {
		// Without the mutex: other calls go on, and the tenant is refused.
		if _, err := e.set.Acquire(id, func() (*fake, error) { return &fake{}, nil }); !errors.Is(err, store.ErrUnknownTenant) {
			return fmt.Errorf("Acquire while removing = %v, want ErrUnknownTenant", err)
		}
		e.release(e.acquire(t, "other"))
		return errors.New("remove failed")
	})
	var de *DropError
	if !errors.As(err, &de) || de.Err.Error() != "remove failed" {
		t.Fatalf("Drop = %v, want a DropError of remove's error", err)
	}
	if e.set.Dropping(id) {
		t.Fatal("handle still in the set after drop")
	}
}

func TestCancelledDropRestoresTheHandle(t *testing.T) {
	e := newEnv(t, 1)
	id := tenant.MustParse("acme")
	f := e.acquire(t, "acme")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := e.set.Drop(ctx, id, Locked, func(*fake, bool) error {
		t.Error("remove called although users remained")
		return nil
	})
	var de *DropError
	if !errors.As(err, &de) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drop = %v, want a DropError of the deadline", err)
	}
	if e.set.Dropping(id) {
		t.Fatal("still dropping after a cancelled drop")
	}
	g := e.acquire(t, "acme") // usable again, the same handle
	if g != f {
		t.Fatal("a cancelled drop lost the open handle")
	}
	e.release(g)
	e.release(f)
	// Idle again, it is back in the LRU list: another tenant evicts it.
	e.release(e.acquire(t, "other"))
	e.set.Close()()
	if !f.closed.Load() || f.badClose.Load() {
		t.Fatalf("closed=%v closed-in-use=%v", f.closed.Load(), f.badClose.Load())
	}
}

func TestCancelledDropOfIdleUserRestoresItToTheLRU(t *testing.T) {
	e := newEnv(t, 1)
	id := tenant.MustParse("acme")
	f := e.acquire(t, "acme")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.set.Drop(ctx, id, Locked, func(*fake, bool) error { return nil }) }()
	for !e.set.Dropping(id) {
		time.Sleep(time.Millisecond)
	}
	// The user leaves while the drop is waiting; it is cancelled before it
	// sees that, so the idle handle must go back to the LRU list.
	cancel()
	e.release(f)
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	e.release(e.acquire(t, "other")) // bound 1: whichever is idle goes
	if n := e.set.Len(); n > 1 {
		t.Fatalf("%d open once idle, bound 1 (a restored handle escaped the LRU)", n)
	}
}

func TestDropWaitsForAnEvictedHandleStillClosing(t *testing.T) {
	e := newEnv(t, 1)
	id := tenant.MustParse("acme")
	gate := make(chan struct{})
	f, err := e.set.Acquire(id, func() (*fake, error) { return &fake{id: id, closeWait: gate}, nil })
	if err != nil {
		t.Fatal(err)
	}
	e.set.Release(f)
	e.release(e.acquire(t, "other")) // evicts acme, whose close blocks
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := e.set.Drop(short, id, Locked, func(*fake, bool) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drop while the evicted handle closes = %v, want the deadline", err)
	}
	var de *DropError
	if errors.As(err, &de) {
		t.Fatal("cancelled while waiting for a closing handle: not a DropError")
	}
	close(gate)
	var removedOpen *bool
	if err := e.set.Drop(context.Background(), id, Locked, func(_ *fake, open bool) error {
		if !f.closed.Load() {
			t.Error("remove ran before the evicted handle was closed")
		}
		removedOpen = &open
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if removedOpen == nil || *removedOpen {
		t.Fatal("remove should run once, with no open handle")
	}
}

func TestCloseWaitsForEvictedHandles(t *testing.T) {
	e := newEnv(t, 1)
	gate := make(chan struct{})
	id := tenant.MustParse("slow")
	f, err := e.set.Acquire(id, func() (*fake, error) { return &fake{id: id, closeWait: gate}, nil })
	if err != nil {
		t.Fatal(err)
	}
	e.set.Release(f)
	open := e.acquire(t, "other") // evicts slow; its close blocks on gate
	finish := e.set.Close()
	if e.set.Close() != nil {
		t.Fatal("second Close returned a finish function")
	}
	if _, err := e.set.Acquire(id, func() (*fake, error) { return &fake{}, nil }); err != errClosed {
		t.Fatalf("Acquire after Close = %v, want the configured error", err)
	}
	if err := e.set.Drop(context.Background(), id, Locked, nil); err != errClosed {
		t.Fatalf("Drop after Close = %v, want the configured error", err)
	}
	done := make(chan struct{})
	go func() { _ = finish(); close(done) }()
	select {
	case <-done:
		t.Fatal("Close finished before the evicted handle was closed")
	case <-time.After(20 * time.Millisecond):
	}
	close(gate)
	<-done
	if !f.closed.Load() || !open.closed.Load() {
		t.Fatalf("evicted closed=%v open closed=%v", f.closed.Load(), open.closed.Load())
	}
	e.release(open) // a user finishing after Close must not reopen or re-list it
	if n := e.set.Len(); n != 0 || e.set.idle.Len() != 0 {
		t.Fatalf("after Close: %d open, %d idle", n, e.set.idle.Len())
	}
}

func TestOpenErrorChangesNothing(t *testing.T) {
	e := newEnv(t, 1)
	e.release(e.acquire(t, "ta"))
	boom := errors.New("boom")
	if _, err := e.set.Acquire(tenant.MustParse("tb"), func() (*fake, error) { return nil, boom }); err != boom {
		t.Fatalf("Acquire = %v, want open's error as is", err)
	}
	e.mu.Lock()
	_, a := e.open[tenant.MustParse("ta")]
	e.mu.Unlock()
	if !a || e.set.Len() != 1 {
		t.Fatal("a failed open evicted or added a handle")
	}
}
