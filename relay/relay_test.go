package relay_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TestRelayPublishesEveryEventOnceInOrder: two tenants (pooled and
// database mode) write; the stream holds each event once, on the tenant's
// subject, with the msg id, headers and body the contract names, in each
// tenant's order; the relay's offsets reach each tenant's head.
func TestRelayPublishesEveryEventOnceInOrder(t *testing.T) {
	e := newEnv(t)
	acme := e.create(t, "acme", "pooled")
	globex := e.create(t, "globex", "database")
	e.run(t, e.options())
	for range 3 {
		e.write(t, acme, "orders", 40)
		e.write(t, globex, "invoices", 25)
	}
	e.write(t, acme, "users", 7)
	waitFor(t, "127 + 75 messages", func() bool { return e.count(t) >= 202 })
	msgs := e.messages(t)
	if len(msgs) != 202 {
		t.Fatalf("stream holds %d messages, want 202", len(msgs))
	}
	incs := map[string]string{}
	for _, id := range []tenant.ID{acme, globex} {
		_, inc, err := e.fl.Catalog().Incarnation(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		incs[id.String()] = strconv.FormatInt(inc.UnixMicro(), 10)
	}
	next := map[string]int64{"acme": 1, "globex": 1}
	for _, m := range msgs {
		tn := m.ev.Tenant.String()
		if m.tenant != tn {
			t.Fatalf("message %d: header tenant %q, body tenant %q", m.seq, m.tenant, tn)
		}
		if want := e.prefix + "." + tn + "." + m.ev.Collection; m.subject != want {
			t.Fatalf("message %d: subject %q, want %q", m.seq, m.subject, want)
		}
		if m.ev.Seq != next[tn] {
			t.Fatalf("%s: event %d came where %d was due (order or once broken)", tn, m.ev.Seq, next[tn])
		}
		next[tn]++
		if want := tn + "." + incs[tn] + "." + strconv.FormatInt(m.ev.Seq, 10); m.id != want {
			t.Fatalf("message %d: msg id %q, want %q", m.seq, m.id, want)
		}
		if m.evSeq != strconv.FormatInt(m.ev.Seq, 10) || m.ev.Op != store.OpCreate || m.ev.ID == "" {
			t.Fatalf("message %d: seq header %q, event %+v", m.seq, m.evSeq, m.ev)
		}
	}
	waitFor(t, "offsets saved", func() bool { return e.offset(t, acme) == 127 && e.offset(t, globex) == 75 })
	if got := metric(t, e, "bulkhead_relay_published_total", "acme"); got != 127 {
		t.Fatalf("bulkhead_relay_published_total{tenant=acme} = %v, want 127", got)
	}
}

// metric returns the value of a metric with tenant label tn (0 if none).
func metric(t *testing.T, e *env, name, tn string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tenant" && l.GetValue() == tn {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}
