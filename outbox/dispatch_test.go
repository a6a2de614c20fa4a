package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/outbox"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// dispatcher returns a Dispatcher over the fixture's router and tenants.
func (f *fixture) dispatcher(t *testing.T, o outbox.DispatcherOptions) *outbox.Dispatcher {
	t.Helper()
	if o.Store == nil {
		o.Store = f.router
	}
	o.Tenants = f.tenants()
	d, err := outbox.NewDispatcher(o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// seen is what a handler observed of one event.
type seen struct {
	ctxTenant, evTenant, owner string
	seq                        int64
}

func (s seen) String() string {
	return fmt.Sprintf("%s/%s/%s#%d", s.ctxTenant, s.evTenant, s.owner, s.seq)
}

// TestHandlersSeeOnlyTheirEventsTenant (issue 13, point 4): two tenants
// hold a record with the same collection and id but different data; a
// handler that reads the record its event names through the router, with
// the context it is given, sees its own tenant's data and never the
// other's, both as a Handler and as a TxHandler, with the tenants handled
// concurrently. A handler that drops the tenant from its context fails
// closed: the router refuses it, and the position does not move.
func TestHandlersSeeOnlyTheirEventsTenant(t *testing.T) {
	engines(t, func(t *testing.T, f *fixture) {
		acme, globex := f.tenant(t, "acme"), f.tenant(t, "globex")
		for i := range 3 {
			f.put(t, acme, "notes", "n1", fmt.Sprintf(`{"owner":"acme","v":%d}`, i))
			f.put(t, globex, "notes", "n1", fmt.Sprintf(`{"owner":"globex","v":%d}`, i))
		}
		owner := func(data []byte) string {
			var v struct{ Owner string }
			_ = json.Unmarshal(data, &v)
			return v.Owner
		}
		var mu sync.Mutex
		var got []seen
		done := make(chan struct{})
		var finish sync.Once
		crossed := false // guarded by mu
		record := func(ctx context.Context, ev store.Event, data []byte) {
			id, _ := tenant.FromContext(ctx)
			mu.Lock()
			defer mu.Unlock()
			s := seen{id.String(), ev.Tenant.String(), owner(data), ev.Seq}
			got = append(got, s)
			crossed = crossed || s.ctxTenant != s.evTenant || s.owner != s.evTenant
			if len(got) == 12 || crossed {
				finish.Do(func() { close(done) }) // all seen, or a crossing: check now
			}
		}
		d := f.dispatcher(t, outbox.DispatcherOptions{Workers: 2, Batch: 1})
		must(t, d.Handle("reader", func(ctx context.Context, ev store.Event) error {
			return f.router.ReadTx(ctx, func(tx *store.Tx) error {
				rec, err := tx.Get(ctx, ev.Collection, ev.ID)
				if err == nil {
					record(ctx, ev, rec.Data)
				}
				return err
			})
		}))
		must(t, d.HandleTx("writer", func(ctx context.Context, tx *store.Tx, ev store.Event) error {
			rec, err := tx.Get(ctx, ev.Collection, ev.ID)
			if err == nil {
				record(ctx, ev, rec.Data)
			}
			return err
		}))
		ctx, stop := context.WithCancel(context.Background())
		ran := make(chan error)
		go func() { ran <- d.Run(ctx) }()
		waitFor(t, done, func() string { mu.Lock(); defer mu.Unlock(); return fmt.Sprint(got) })
		// A TxHandler saw its event before its transaction committed: wait
		// for the positions (or a crossing, which fails below at once).
		positions := func() string {
			return fmt.Sprint(f.offset(t, acme, "reader"), f.offset(t, globex, "reader"), f.offset(t, acme, "writer"), f.offset(t, globex, "writer"))
		}
		waitUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return crossed || positions() == "3 3 3 3" }, positions)
		stop()
		if err := <-ran; err != nil {
			t.Fatal(err)
		}
		for _, s := range got {
			if s.ctxTenant != s.evTenant || s.owner != s.evTenant {
				t.Errorf("a handler of %s's event %d ran in %s's context and read %s's record", s.evTenant, s.seq, s.ctxTenant, s.owner)
			}
		}
		for _, c := range []string{"reader", "writer"} {
			if a, g := f.offset(t, acme, c), f.offset(t, globex, c); a != 3 || g != 3 {
				t.Fatalf("%s's positions: acme %d, globex %d; want 3, 3", c, a, g)
			}
		}

		// A handler that reads with a context of its own, without the
		// tenant, is refused by the router: nothing is read, the error is
		// the dispatcher's, and the event stays to be handled.
		f.put(t, acme, "notes", "n2", `{"owner":"acme"}`)
		d = f.dispatcher(t, outbox.DispatcherOptions{})
		must(t, d.Handle("reader", func(_ context.Context, ev store.Event) error {
			return f.router.ReadTx(context.Background(), func(tx *store.Tx) error {
				_, err := tx.Get(context.Background(), ev.Collection, ev.ID)
				return err
			})
		}))
		if err := d.Dispatch(context.Background(), tenant.MustParse("acme")); !errors.Is(err, tenant.ErrMissing) {
			t.Fatalf("a handler without a tenant: %v, want tenant.ErrMissing", err)
		}
		if off := f.offset(t, acme, "reader"); off != 3 {
			t.Fatalf("the position moved past a failed event: %d", off)
		}
	})
}

// TestDispatchIsAtLeastOnce: a handler error stops the consumer at that
// event, which comes again on the next turn; a dispatcher made afresh (a
// restart) resumes from the saved position: every event is handled, none
// is lost, only failed ones come twice.
func TestDispatchIsAtLeastOnce(t *testing.T) {
	engines(t, func(t *testing.T, f *fixture) {
		acme := f.tenant(t, "acme")
		for i := range 5 {
			f.put(t, acme, "notes", fmt.Sprintf("n%d", i), `{}`)
		}
		m, err := outbox.NewDispatchMetrics(f.reg)
		if err != nil {
			t.Fatal(err)
		}
		var handled []string
		failures := 2
		handler := func(_ context.Context, ev store.Event) error {
			if ev.Seq == 3 && failures > 0 {
				failures--
				handled = append(handled, fmt.Sprintf("%d!", ev.Seq))
				return errors.New("downstream unavailable")
			}
			handled = append(handled, fmt.Sprint(ev.Seq))
			return nil
		}
		d := f.dispatcher(t, outbox.DispatcherOptions{Metrics: m, Batch: 2})
		must(t, d.Handle("mailer", handler))
		id := tenant.MustParse("acme")
		for range 2 {
			if err := d.Dispatch(context.Background(), id); err == nil || !strings.Contains(err.Error(), "downstream unavailable") {
				t.Fatalf("Dispatch with a failing handler: %v", err)
			}
			if off := f.offset(t, acme, "mailer"); off != 2 {
				t.Fatalf("position after a failure at 3: %d, want 2", off)
			}
		}
		if err := d.Dispatch(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if s := strings.Join(handled, " "); s != "1 2 3! 3! 3 4 5" {
			t.Fatalf("handled: %s", s)
		}
		if n := counter(t, f.reg, "bulkhead_outbox_dispatch_errors_total", "mailer"); n != 2 {
			t.Fatalf("errors metric = %v", n)
		}
		if n := counter(t, f.reg, "bulkhead_outbox_dispatched_events_total", "mailer"); n != 5 {
			t.Fatalf("dispatched metric = %v", n)
		}

		// A stop in the middle of a batch (the process going away) saves
		// nothing past what it has not finished: those come again.
		f.put(t, acme, "notes", "n5", `{}`)
		f.put(t, acme, "notes", "n6", `{}`)
		handled = nil
		ctx, stop := context.WithCancel(context.Background())
		d = f.dispatcher(t, outbox.DispatcherOptions{})
		must(t, d.Handle("mailer", func(_ context.Context, ev store.Event) error {
			handled = append(handled, fmt.Sprint(ev.Seq))
			stop() // killed after handling 6, before saving
			return nil
		}))
		if err := d.Dispatch(ctx, id); !errors.Is(err, context.Canceled) {
			t.Fatalf("Dispatch stopped midway: %v", err)
		}
		if off := f.offset(t, acme, "mailer"); off != 5 {
			t.Fatalf("position after a stop midway: %d, want 5", off)
		}

		// Restart: another router and dispatcher on the same storage.
		f.put(t, acme, "notes", "n7", `{}`)
		f.router = f.newRouter(t)
		d = f.dispatcher(t, outbox.DispatcherOptions{})
		must(t, d.Handle("mailer", handler))
		if err := d.Dispatch(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if s := strings.Join(handled, " "); s != "6 6 7 8" {
			t.Fatalf("handled across the stop and the restart: %s, want 6 6 7 8", s)
		}
		if off := f.offset(t, acme, "mailer"); off != 8 {
			t.Fatalf("position after the restart: %d", off)
		}
	})
}

// waitFor waits until done is closed; a test whose dispatcher never gets
// there fails, after a generous while, with what it got, rather than hang.
func waitFor(t *testing.T, done <-chan struct{}, got func() string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("the dispatcher did not get there; it got %s", got())
	}
}

// waitUntil polls cond until it holds; a test that never gets there fails
// after a generous while with what it got.
func waitUntil(t *testing.T, cond func() bool, got func() string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the dispatcher did not get there; it got %s", got())
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
