package ingress_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/ingress"
)

// newWindowEachTime is a clock that moves an hour at each look: every
// unauthenticated request falls in a window of its own and is recorded on
// its own.
func newWindowEachTime() func() time.Time {
	var hours atomic.Int64
	return func() time.Time { return time.Unix(0, 0).Add(time.Duration(hours.Add(1)) * time.Hour) }
}

// TestUnauthenticatedRequestsCannotGrowTheLogWithoutBound: 300 junk
// tokens from one address made 300 entries; now a few are recorded and
// the rest counted into one entry when the interval ends.
func TestUnauthenticatedRequestsCannotGrowTheLogWithoutBound(t *testing.T) {
	var now atomic.Int64
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f := newFixture(t, func(c *ingress.Config) {
		c.Now = func() time.Time { return start.Add(time.Duration(now.Load())) }
	})
	const junk = 300
	for i := range junk {
		f.do("GET", "/v1/collections/notes/records/n1", "junk-"+strconv.Itoa(i))
	}
	es := f.entries(audit.ControlChain)
	if len(es) == 0 || len(es) > 10 {
		t.Fatalf("%d junk tokens made %d entries, want a handful", junk, len(es))
	}
	recorded := len(es)

	now.Store(int64(2 * time.Minute)) // the interval is over
	f.do("GET", "/v1/collections/notes/records/n1", "junk-next")
	es = f.entries(audit.ControlChain)
	var total *audit.Entry
	for i := range es {
		if es[i].Action == ingress.FailuresAction {
			total = &es[i]
		}
	}
	if total == nil {
		t.Fatalf("no %s entry after the interval: %+v", ingress.FailuresAction, es[recorded:])
	}
	want := "suppressed:" + strconv.Itoa(junk-recorded)
	if total.Resource != "client/127.0.0.1" || total.Decision != want || total.Principal != "anonymous" || total.RequestID != "" {
		t.Errorf("count entry %+v, want client/127.0.0.1 %s", *total, want)
	}
	if es[len(es)-1].Decision != "deny:unauthenticated" {
		t.Errorf("the first request of the new interval was not recorded: %+v", es[len(es)-1])
	}
	if rep, err := f.audit.Verify(context.Background()); err != nil || !rep.OK() {
		t.Errorf("verify: %+v %v", rep, err)
	}
}

// The count of the window still open is written by FlushFailures (at
// shutdown), not lost.
func TestFlushFailuresWritesTheOpenWindowsCount(t *testing.T) {
	f := newFixture(t, nil)
	const junk = 20
	for i := range junk {
		f.do("GET", "/v1/collections/notes/records/n1", "junk-"+strconv.Itoa(i))
	}
	recorded := len(f.entries(audit.ControlChain))
	if err := f.gate.FlushFailures(context.Background()); err != nil {
		t.Fatal(err)
	}
	es := f.entries(audit.ControlChain)
	if len(es) != recorded+1 || es[len(es)-1].Action != ingress.FailuresAction ||
		es[len(es)-1].Decision != "suppressed:"+strconv.Itoa(junk-recorded) {
		t.Fatalf("after the flush: %+v", es[recorded:])
	}
	if err := f.gate.FlushFailures(context.Background()); err != nil || len(f.entries(audit.ControlChain)) != recorded+1 {
		t.Fatalf("a second flush wrote again (%v)", err)
	}
}

// flakyLog is an audit log whose appends fail while down is set.
type flakyLog struct {
	*audit.Log
	down atomic.Bool
}

func (l *flakyLog) Append(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	if l.down.Load() {
		return audit.Entry{}, errors.New("disk I/O error")
	}
	return l.Log.Append(ctx, e)
}

// TestAnAnswerThatCannotBeAuditedIsWithheld: a privileged request whose
// audit entry cannot be written is not answered as a success.
func TestAnAnswerThatCannotBeAuditedIsWithheld(t *testing.T) {
	var flaky *flakyLog
	f := newFixture(t, func(c *ingress.Config) {
		flaky = &flakyLog{Log: c.Audit.(*audit.Log)}
		c.Audit = flaky
	})
	const read = "/v1/collections/notes/records/n1"
	flaky.down.Store(true)
	for name, do := range map[string]func() response{
		"a support agent's read": func() response { return f.do("GET", read, agentSam, ingress.ActAsHeader, "acme") },
		"an operator's change":   func() response { return f.do("POST", "/v1/admin/tenants/acme/suspend", operator) },
	} {
		r := do()
		if r.status != 503 || r.doc.Code != "audit_unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("%s with the audit log down: %d %q, want 503 audit_unavailable", name, r.status, r.body)
		}
		if strings.Contains(r.body, "acme") {
			t.Errorf("%s: the handler's answer went out: %q", name, r.body)
		}
	}
	flaky.down.Store(false)
	if r := f.do("GET", read, agentSam, ingress.ActAsHeader, "acme"); r.status != 200 || r.body != "acme" {
		t.Errorf("with the audit log back: %d %q", r.status, r.body)
	}
	f.audited("acme", "support:sam", "record.read", "allow")
}

// TestActAsRefusalsGoOnTheTenantsChain: a support agent's refused write
// under a live grant is the tenant's business, not only the operators'.
func TestActAsRefusalsGoOnTheTenantsChain(t *testing.T) {
	f := newFixture(t, nil)
	control := len(f.entries(audit.ControlChain))
	f.denied(403, "forbidden", "PUT", "/v1/collections/notes/records/n1", agentSam, ingress.ActAsHeader, "acme")
	e := f.audited("acme", "support:sam", "record.write", "deny:forbidden")
	if e.Resource != "tenant/acme/collections/notes" {
		t.Errorf("resource %q", e.Resource)
	}
	f.denied(403, "forbidden", "GET", "/v1/collections/notes/records/n1", agentSam, ingress.ActAsHeader, "beta")
	f.audited("beta", "support:sam", "record.read", "deny:forbidden") // no grant for beta
	if n := len(f.entries(audit.ControlChain)); n != control {
		t.Errorf("%d act-as refusals on the control chain, want them on the tenants'", n-control)
	}
}

// TestAHandlerNamesTheResource: what the route cannot tell (a tenant
// created from the body, an agent's id) the handler names with
// SetResource.
func TestAHandlerNamesTheResource(t *testing.T) {
	f := newFixture(t, nil)
	if r := f.do("POST", "/v1/admin/tenants/acme/suspend?resource=support-agents/sa_1", operator); r.status != 200 {
		t.Fatalf("%d %q", r.status, r.body)
	}
	if e := f.audited(audit.ControlChain, "operator:operator", "tenant.suspend", "allow"); e.Resource != "support-agents/sa_1" {
		t.Errorf("resource %q, want the handler's", e.Resource)
	}
}
