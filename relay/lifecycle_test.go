package relay_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/relay"
	"github.com/bulkhead-dev/bulkhead/sched"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TestRelayResumesFromItsOffset: a relay stopped and started again
// publishes only what came after the position it saved.
func TestRelayResumesFromItsOffset(t *testing.T) {
	e := newEnv(t)
	acme := e.create(t, "acme", "")
	stop := e.run(t, e.options())
	e.write(t, acme, "orders", 30)
	waitFor(t, "30 messages and the offset", func() bool { return e.count(t) == 30 && e.offset(t, acme) == 30 })
	stop()
	e.write(t, acme, "orders", 12) // while no relay runs
	e.run(t, e.options())          // the scan at start finds them
	waitFor(t, "the offset at 42", func() bool { return e.offset(t, acme) == 42 })
	e.wantEventsOnceInOrder(t, 42)
}

// TestRecreatedTenantIsANewTenant: a tenant deleted and created again with
// the same id numbers its events from 1 again; its messages carry the new
// incarnation in their msg ids, so JetStream does not drop them as the old
// tenant's duplicates, and the relay does not start from the old tenant's
// position.
func TestRecreatedTenantIsANewTenant(t *testing.T) {
	e := newEnv(t)
	acme := e.create(t, "acme", "database")
	e.run(t, e.options())
	e.write(t, acme, "orders", 5)
	waitFor(t, "the first incarnation's 5 messages", func() bool { return e.offset(t, acme) == 5 })
	if err := e.fl.Offboard(context.Background(), acme); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // incarnations are microsecond instants: make them differ
	e.create(t, "acme", "pooled")
	e.write(t, acme, "orders", 3)
	waitFor(t, "the second incarnation's 3 messages", func() bool { return e.count(t) == 8 })
	msgs := e.messages(t)
	incs := map[string]bool{}
	for i, m := range msgs {
		parts := strings.Split(m.id, ".")
		if len(parts) != 3 || parts[0] != "acme" {
			t.Fatalf("msg id %q", m.id)
		}
		incs[parts[1]] = true
		want := int64(i + 1)
		if i >= 5 {
			want = int64(i - 4)
		}
		if m.ev.Seq != want || parts[2] != strconv.FormatInt(want, 10) {
			t.Fatalf("message %d: event %d (msg id %q), want event %d", i+1, m.ev.Seq, m.id, want)
		}
	}
	if len(incs) != 2 {
		t.Fatalf("msg ids name %d incarnations, want 2", len(incs))
	}
	waitFor(t, "the new tenant's offset", func() bool { return e.offset(t, acme) == 3 })
}

// TestTrimmedEventsAreSkipped: events trimmed from the outbox before the
// relay got to them are counted, logged and skipped; the relay publishes
// what is left and saves its position past it.
func TestTrimmedEventsAreSkipped(t *testing.T) {
	e := newEnv(t)
	acme := e.create(t, "acme", "")
	e.write(t, acme, "orders", 10)
	ctx := tenant.WithID(context.Background(), acme)
	err := e.fl.Router().Tx(ctx, func(tx *store.Tx) error {
		n, err := tx.TrimEvents(ctx, time.Time{}, 3, 100) // keep the newest 3
		if err == nil && n != 7 {
			t.Errorf("trimmed %d events, want 7", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.run(t, e.options())
	waitFor(t, "the offset at 10", func() bool { return e.offset(t, acme) == 10 })
	msgs := e.messages(t)
	if len(msgs) != 3 || msgs[0].ev.Seq != 8 || msgs[2].ev.Seq != 10 {
		t.Fatalf("stream holds %d messages (first %v), want events 8 to 10", len(msgs), msgs)
	}
	if got := metric(t, e, "bulkhead_relay_expired_total", "acme"); got != 7 {
		t.Fatalf("bulkhead_relay_expired_total{tenant=acme} = %v, want 7", got)
	}
}

// TestBurstDoesNotMonopoliseTheRelay: one worker, a tenant with 3,000
// events waiting and one with 10: the small tenant's events are in the
// stream long before the big one's are done (it waits for about one of
// the big tenant's batches, not for all of them).
func TestBurstDoesNotMonopoliseTheRelay(t *testing.T) {
	e := newEnv(t)
	big := e.create(t, "big", "")
	small := e.create(t, "small", "")
	for range 6 {
		e.write(t, big, "clicks", 500)
	}
	e.write(t, small, "orders", 10)
	opts := e.options()
	opts.Workers, opts.BatchSize = 1, 100
	e.run(t, opts)
	waitFor(t, "3,010 messages", func() bool { return e.count(t) == 3010 })
	last := uint64(0)
	for _, m := range e.messages(t) {
		if m.ev.Tenant == small {
			last = m.seq
		}
	}
	if last == 0 || last > 300 {
		t.Fatalf("the small tenant's last event is message %d of 3,010; want it within the first 300", last)
	}
}

// TestRateLimitedTenantGetsEveryEvent: a per-tenant rate smaller than its
// backlog holds the tenant back between batches (the bucket itself is
// TestBucket's), and every event still arrives once.
func TestRateLimitedTenantGetsEveryEvent(t *testing.T) {
	e := newEnv(t)
	acme := e.create(t, "acme", "")
	e.write(t, acme, "orders", 200)
	opts := e.options()
	opts.Rate, opts.Burst = 2000, 50 // 50 at once, then 2 per millisecond
	e.run(t, opts)
	waitFor(t, "the offset at 200", func() bool { return e.offset(t, acme) == 200 })
	if n := e.count(t); n != 200 {
		t.Fatalf("stream holds %d messages, want 200", n)
	}
	if got := metric(t, e, "bulkhead_relay_published_total", "acme"); got != 200 {
		t.Fatalf("published %v, want 200", got)
	}
}

// TestRelayOptionsAreChecked: bad options fail New with ErrOptions and
// say what to fix.
func TestRelayOptionsAreChecked(t *testing.T) {
	e := newEnv(t)
	for name, mod := range map[string]func(*relay.Options){
		"no connection":       func(o *relay.Options) { o.Conn = nil },
		"stream with a dot":   func(o *relay.Options) { o.Stream = "A.B" },
		"prefix wildcard":     func(o *relay.Options) { o.SubjectPrefix = "bulkhead.*" },
		"prefix empty token":  func(o *relay.Options) { o.SubjectPrefix = "bulkhead..x" },
		"batch over the page": func(o *relay.Options) { o.BatchSize = store.MaxEventPage + 1 },
	} {
		t.Run(name, func(t *testing.T) {
			o := e.options()
			mod(&o)
			if _, err := relay.New(o); err == nil || !strings.Contains(err.Error(), "relay") {
				t.Fatalf("New: %v, want an error", err)
			}
		})
	}
}

// weights is a limits.Source with a weight per tenant (1 otherwise).
type weights map[string]int

func (w weights) For(_ context.Context, id tenant.ID) (limits.Limits, error) {
	return limits.Limits{Weight: max(w[id.String()], 1)}, nil
}

// TestWeightsShareTheRelay: two tenants with equal backlogs, one of weight
// 3: while both have events, the heavier one gets about three of every
// four batches.
func TestWeightsShareTheRelay(t *testing.T) {
	e := newEnv(t)
	gold := e.create(t, "gold", "")
	std := e.create(t, "std", "")
	for range 4 {
		e.write(t, gold, "orders", 500)
		e.write(t, std, "orders", 500)
	}
	opts := e.options()
	// The relay's own scheduler, with Weights.
	opts.Scheduler, opts.Weights, opts.Workers, opts.BatchSize = nil, weights{"gold": 3}, 1, 100
	e.run(t, opts)
	waitFor(t, "4,000 messages", func() bool { return e.count(t) == 4000 })
	n := 0
	for _, m := range e.messages(t)[:2000] {
		if m.ev.Tenant == gold {
			n++
		}
	}
	if n < 1400 || n > 1600 {
		t.Fatalf("gold has %d of the first 2,000 messages, want about 1,500 (weight 3 against 1)", n)
	}
}

// TestBackendWithoutOutboxIsSaidOnce: on a router that keeps no outbox
// the relay publishes nothing and says so once per tenant, however often
// the tenant is made ready, instead of retrying for ever.
func TestBackendWithoutOutboxIsSaidOnce(t *testing.T) {
	url := natsURL(t)
	e := &env{nc: connect(t, url), sch: sched.New(sched.Options{}), reg: prometheus.NewRegistry()}
	e.js = mustJetStream(t, e.nc)
	e.stream, e.prefix = testStream(t, e.nc)
	var err error
	e.fl, err = fleet.OpenSQLite(context.Background(), t.TempDir(), fleet.OpenOptions{Router: store.Config{NoEvents: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.fl.Close() })
	acme := e.create(t, "acme", "")
	e.write(t, acme, "orders", 3)
	var logs syncBuffer
	opts := e.options()
	opts.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	stop := e.run(t, opts) // its scan makes acme ready once
	waitFor(t, "the warning", func() bool { return strings.Contains(logs.String(), "keeps no event outbox") })
	for range 5 {
		e.sch.Ready(acme)
		waitFor(t, "the scheduler to take acme", func() bool { return e.sch.Queued() == 0 })
	}
	stop()
	if n := strings.Count(logs.String(), "nats relay: the tenant's backend keeps no event outbox"); n != 1 {
		t.Fatalf("warned %d times, want once:\n%s", n, logs.String())
	}
	if n := e.count(t); n != 0 {
		t.Fatalf("stream holds %d messages", n)
	}
}

// TestTwoRelaysPublishOnce: two relays over the same tenants (two server
// instances on one PostgreSQL) publish the same messages; JetStream keeps
// one of each, and the saved position ends at the head.
func TestTwoRelaysPublishOnce(t *testing.T) {
	e := newEnv(t)
	acme := e.create(t, "acme", "")
	for range 3 {
		e.write(t, acme, "orders", 100)
	}
	for range 2 {
		opts := e.options()
		opts.Scheduler, opts.Metrics, opts.BatchSize = nil, nil, 50 // each its own; the scan at start finds acme
		e.run(t, opts)
	}
	waitFor(t, "the offset at 300", func() bool { return e.offset(t, acme) == 300 })
	e.wantEventsOnceInOrder(t, 300)
}
