package ingress_test

import (
	"context"
	"testing"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/ingress"
)

// TestAnalyticsPlane: analysts reach the analytics plane and nothing
// else; no one else reaches it. Every analytics request is audited on the
// control chain, and its handler sees no tenant.
func TestAnalyticsPlane(t *testing.T) {
	f := newFixture(t, nil)

	// An analyst on a tenant's data, even naming a tenant, and on the control plane.
	f.denied(403, "forbidden", "GET", "/v1/collections/notes/records/n1", analystAnn)
	f.denied(403, "forbidden", "GET", "/v1/collections/notes/records/n1", analystAnn, ingress.ActAsHeader, "acme")
	f.denied(403, "forbidden", "GET", "/v1/tenants/acme/collections/notes", analystAnn)
	f.denied(403, "forbidden", "GET", "/v1/admin/tenants/acme", analystAnn)
	f.denied(403, "forbidden", "POST", "/v1/admin/tenants/acme/suspend", analystAnn)
	f.audited(audit.ControlChain, "analyst:ann", "tenant.suspend", "deny:forbidden")
	if es := f.entries("acme"); len(es) != 0 {
		t.Errorf("an analyst's refusals went on acme's chain: %+v", es)
	}

	// Everyone else on the analytics plane.
	for _, tok := range []string{operator, acmeWriter, agentSam} {
		f.denied(403, "forbidden", "GET", "/v1/analytics/query", tok)
	}
	f.denied(403, "forbidden", "GET", "/v1/analytics/query", agentSam, ingress.ActAsHeader, "acme")
	f.denied(403, "forbidden", "GET", "/v1/analytics/query", suspended)
	f.denied(401, "unauthenticated", "GET", "/v1/analytics/query", "")
	f.audited(audit.ControlChain, "anonymous", "analytics.query", "deny:unauthenticated")

	// The analyst passes, with no tenant in the context even if one is
	// named, and the request is audited with the resource it names.
	got := f.passed("GET", "/v1/analytics/query?resource=analytics/collections/notes", analystAnn, ingress.ActAsHeader, "acme")
	if got.Principal.Kind != ingress.KindAnalyst || got.Tenant != "" {
		t.Errorf("the analytics handler saw %+v", got)
	}
	e := f.audited(audit.ControlChain, "analyst:ann", "analytics.query", "allow")
	if e.Resource != "analytics/collections/notes" {
		t.Errorf("resource %q", e.Resource)
	}
	f.passed("GET", "/v1/analytics/query", analystAnn)
	if e := f.audited(audit.ControlChain, "analyst:ann", "analytics.query", "allow"); e.Resource != ingress.AnalyticsResource {
		t.Errorf("default resource %q", e.Resource)
	}
}

// TestAnalyticsAndControlAtOnce: a request cannot claim two planes.
func TestAnalyticsAndControlAtOnce(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := f.gate.Enter(context.Background(), ingress.Request{Token: operator, Action: "tenant.list",
		Control: true, Analytics: true}); err == nil {
		t.Fatal("a request on both planes was let in")
	}
}
