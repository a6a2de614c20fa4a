package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/outbox"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// run starts d.Run and returns a function that stops it and waits.
func run(t *testing.T, d *outbox.Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error)
	go func() { ran <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-ran; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// handled is a handler's record of what it handled, with a channel closed
// when it holds want entries.
type handled struct {
	mu   sync.Mutex
	got  []string
	want int
	done chan struct{}
}

func newLog(want int) *handled { return &handled{want: want, done: make(chan struct{})} }

func (l *handled) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, s)
	if len(l.got) == l.want {
		close(l.done)
	}
}

func (l *handled) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.got, " ")
}

// TestRunIsFairAndWokenByCommits: one worker takes tenants in turn, a
// bounded batch each, so a tenant with a backlog does not make another
// wait for all of it; a commit wakes the dispatcher through the router's
// EventsCommitted hook, with no poll in between.
func TestRunIsFairAndWokenByCommits(t *testing.T) {
	engines(t, func(t *testing.T, f *fixture) {
		big, small := f.tenant(t, "big"), f.tenant(t, "small")
		for i := range 6 {
			f.put(t, big, "notes", fmt.Sprintf("b%d", i), `{}`)
		}
		f.put(t, small, "notes", "s0", `{}`)
		l := newLog(7)
		d := f.dispatcher(t, outbox.DispatcherOptions{Workers: 1, Batch: 2, Poll: time.Hour})
		must(t, d.Handle("indexer", func(ctx context.Context, ev store.Event) error {
			id, _ := tenant.FromContext(ctx)
			l.add(fmt.Sprintf("%s%d", id, ev.Seq))
			return nil
		}))
		notify := d.Notify
		f.notify.Store(&notify)
		run(t, d)
		waitFor(t, l.done, l.String)
		if s := l.String(); s != "big1 big2 small1 big3 big4 big5 big6" {
			t.Fatalf("order: %s, want small's event after big's first batch", s)
		}
		l2 := newLog(1)
		l.mu.Lock()
		l.want, l.done = 8, l2.done
		l.mu.Unlock()
		f.put(t, small, "notes", "s1", `{}`) // only the commit hook can wake it: the poll is an hour away
		<-l2.done
		if s := l.String(); !strings.HasSuffix(s, " small2") {
			t.Fatalf("after a commit: %s", s)
		}
	})
}

// TestRunRetriesWithBackoffAndServesOthers: a consumer failing on one
// tenant is retried with backoff until it succeeds, and meanwhile the
// other tenants' events are handled.
func TestRunRetriesWithBackoffAndServesOthers(t *testing.T) {
	engines(t, func(t *testing.T, f *fixture) {
		acme, globex := f.tenant(t, "acme"), f.tenant(t, "globex")
		f.put(t, acme, "notes", "a", `{}`)
		for i := range 3 {
			f.put(t, globex, "notes", fmt.Sprintf("g%d", i), `{}`)
		}
		var attempts atomic.Int64
		retried := make(chan struct{})
		var release atomic.Bool
		others, mine := newLog(3), newLog(1)
		d := f.dispatcher(t, outbox.DispatcherOptions{Workers: 1, Poll: time.Hour, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond})
		must(t, d.Handle("sync", func(ctx context.Context, ev store.Event) error {
			if ev.Tenant.String() == "globex" {
				others.add(fmt.Sprint(ev.Seq))
				return nil
			}
			if !release.Load() {
				if attempts.Add(1) == 3 {
					close(retried)
				}
				return errors.New("acme's downstream is down")
			}
			mine.add(fmt.Sprint(ev.Seq))
			return nil
		}))
		run(t, d)
		waitFor(t, others.done, others.String)
		waitFor(t, retried, func() string { return fmt.Sprint(attempts.Load(), " attempts") })
		if off := f.offset(t, acme, "sync"); off != 0 {
			t.Fatalf("acme's position moved while its handler failed: %d", off)
		}
		release.Store(true)
		waitFor(t, mine.done, mine.String)
		if s := others.String(); s != "1 2 3" {
			t.Fatalf("globex's events: %s", s)
		}
		_ = globex
	})
}

// TestTxHandlerCommitsItsWritesOnce: a TxHandler's writes and the
// consumer's position commit together: a failure after writing rolls the
// write back, so after retries each event has left exactly one write. The
// consumer is filtered to one collection, so its own writes (events of
// another collection) do not feed it.
func TestTxHandlerCommitsItsWritesOnce(t *testing.T) {
	engines(t, func(t *testing.T, f *fixture) {
		acme := f.tenant(t, "acme")
		for i := range 4 {
			f.put(t, acme, "orders", fmt.Sprintf("o%d", i), `{}`)
		}
		fail := map[int64]int{2: 1, 4: 2}
		d := f.dispatcher(t, outbox.DispatcherOptions{Batch: 10})
		must(t, d.HandleTx("invoicer", func(ctx context.Context, tx *store.Tx, ev store.Event) error {
			rec, created, err := tx.Put(ctx, "invoices", ev.ID, []byte(fmt.Sprintf(`{"seq":%d}`, ev.Seq)), store.IfMatch{})
			if err != nil {
				return err
			}
			if !created || rec.Version != 1 {
				return fmt.Errorf("invoice %s written twice (version %d)", ev.ID, rec.Version)
			}
			if fail[ev.Seq] > 0 {
				fail[ev.Seq]--
				return errors.New("crash after the write")
			}
			return nil
		}, "orders"))
		id := tenant.MustParse("acme")
		errs := 0
		for d.Dispatch(context.Background(), id) != nil {
			if errs++; errs > 3 {
				t.Fatal("still failing after the planned failures")
			}
		}
		if errs != 3 {
			t.Fatalf("%d failed turns, want 3", errs)
		}
		var n int
		must(t, f.router.ReadTx(acme, func(tx *store.Tx) error {
			p, err := tx.List(acme, "invoices", store.ListOptions{Limit: 10})
			n = len(p.Items)
			for _, r := range p.Items {
				if r.Version != 1 {
					t.Errorf("invoice %s at version %d", r.ID, r.Version)
				}
			}
			return err
		}))
		if n != 4 {
			t.Fatalf("%d invoices, want 4", n)
		}
		// The position moves past the invoices' own events too (seen, not
		// the consumer's): the last one committed after the turn's snapshot,
		// so the next turn, handling nothing, passes it.
		must(t, d.Dispatch(context.Background(), id))
		if off, head := f.offset(t, acme, "invoicer"), int64(8); off != head {
			t.Fatalf("position %d, want the head %d", off, head)
		}
	})
}

// TestDispatchAfterATrim: a consumer behind a trim skips to the oldest
// event kept by default, counted; with Expired set it catches up first, in
// the tenant's context, and an error there keeps it where it was.
func TestDispatchAfterATrim(t *testing.T) {
	engines(t, func(t *testing.T, f *fixture) {
		acme := f.tenant(t, "acme")
		for i := range 5 {
			f.put(t, acme, "notes", fmt.Sprintf("n%d", i), `{}`)
		}
		tr := f.trimmer(t, outbox.TrimOptions{MaxCount: 2}, nil)
		if _, err := tr.Trim(context.Background()); err != nil {
			t.Fatal(err)
		}
		m, err := outbox.NewDispatchMetrics(f.reg)
		must(t, err)
		var got []string
		h := func(_ context.Context, ev store.Event) error { got = append(got, fmt.Sprint(ev.Seq)); return nil }
		id := tenant.MustParse("acme")

		var caughtUp []string
		fail := true
		d := f.dispatcher(t, outbox.DispatcherOptions{Metrics: m, Expired: func(ctx context.Context, consumer string) error {
			tid, _ := tenant.FromContext(ctx)
			caughtUp = append(caughtUp, tid.String()+"/"+consumer)
			if fail {
				return errors.New("cannot read a fresh copy")
			}
			return nil
		}})
		must(t, d.Handle("careful", h))
		if err := d.Dispatch(context.Background(), id); err == nil || f.offset(t, acme, "careful") != 0 {
			t.Fatalf("a failed catch-up: %v, position %d", err, f.offset(t, acme, "careful"))
		}
		fail = false
		must(t, d.Dispatch(context.Background(), id))
		if fmt.Sprint(caughtUp) != "[acme/careful acme/careful]" || fmt.Sprint(got) != "[4 5]" {
			t.Fatalf("catch-ups %v, handled %v", caughtUp, got)
		}

		got = nil
		d = f.dispatcher(t, outbox.DispatcherOptions{Metrics: m})
		must(t, d.Handle("hasty", h))
		must(t, d.Dispatch(context.Background(), id))
		if fmt.Sprint(got) != "[4 5]" || f.offset(t, acme, "hasty") != 5 {
			t.Fatalf("the default skips to the oldest kept: handled %v", got)
		}
		if n := counter(t, f.reg, "bulkhead_outbox_dispatch_expired_total", "hasty"); n != 1 {
			t.Fatalf("expired metric = %v", n)
		}
	})
}

func TestDispatcherRegistration(t *testing.T) {
	f := newFixture(t, "sqlite", "pooled")
	d := f.dispatcher(t, outbox.DispatcherOptions{})
	h := func(context.Context, store.Event) error { return nil }
	must(t, d.Handle("mailer", h))
	for name, err := range map[string]error{
		"twice":          d.Handle("mailer", h),
		"a bad name":     d.Handle("Mailer!", h),
		"a bad filter":   d.Handle("other", h, "Bad-Collection"),
		"a nil handler":  d.Handle("other", nil),
		"a nil tx one":   d.HandleTx("other", nil),
		"an empty name":  d.Handle("", h),
		"a control char": d.Handle("a\nb", h),
	} {
		if err == nil {
			t.Errorf("%s: registered", name)
		}
	}
	if err := d.Dispatch(context.Background(), tenant.ID{}); !errors.Is(err, tenant.ErrMissing) {
		t.Fatalf("Dispatch without a tenant: %v", err)
	}
	var nilD *outbox.Dispatcher
	nilD.Notify(tenant.MustParse("acme")) // a hook wired before the dispatcher exists
}
