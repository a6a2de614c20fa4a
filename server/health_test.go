package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
)

// healthOf reads a health answer's 1m and 15m windows.
func healthOf(t *testing.T, r resp) (w1, w15 map[string]any, m map[string]any) {
	t.Helper()
	want(t, r, 200, "")
	m = r.json(t)
	ws, ok := m["windows"].([]any)
	if !ok || len(ws) != 3 {
		t.Fatalf("health has no 3 windows: %s", r.body)
	}
	if s, ok := m["series"].([]any); !ok || len(s) != 60 {
		t.Fatalf("health has no 60-point series: %s", r.body)
	}
	return ws[0].(map[string]any), ws[2].(map[string]any), m
}

func TestTenantHealthEndpoints(t *testing.T) {
	e := newEnv(t)
	a := e.tenantWithKey("alpha", "pooled")
	b := e.tenantWithKey("beta", "pooled")
	reader, _ := e.createKey("alpha", "reader")
	e.createTenant("idle", "pooled")

	for i := range 5 {
		want(t, e.req("PUT", fmt.Sprintf("/v1/collections/notes/records/n%d", i), a, `{"v":1}`), 201, "")
	}
	want(t, e.req("GET", "/v1/collections/notes/records/missing", a, nil), 404, "")
	want(t, e.req("PUT", "/v1/collections/notes/records/x", b, `{"v":1}`), 201, "")
	// The operator's reads of alpha do not count as alpha's requests.
	want(t, e.req("GET", "/v1/admin/tenants/alpha", e.op, nil), 200, "")

	t.Run("the operator sees a tenant's windows, flags, limits and usage", func(t *testing.T) {
		e := e.on(t)
		w1, w15, m := healthOf(t, e.req("GET", "/v1/admin/tenants/alpha/health", e.op, nil))
		if w1["requests"] != 6.0 || w15["requests"] != 6.0 || w1["errors"] != 0.0 || m["tenant"] != "alpha" {
			t.Fatalf("alpha's health: %v", m)
		}
		if f, ok := m["flags"].([]any); !ok || len(f) != 0 {
			t.Fatalf("flags = %v, want []", m["flags"])
		}
		u, _ := m["usage"].(map[string]any)
		if u == nil || u["records"] != 5.0 || m["limits"] == nil {
			t.Fatalf("usage and limits: %v %v", m["usage"], m["limits"])
		}
	})
	t.Run("an active tenant with no traffic answers zeros", func(t *testing.T) {
		e := e.on(t)
		w1, _, m := healthOf(t, e.req("GET", "/v1/admin/tenants/idle/health", e.op, nil))
		if w1["requests"] != 0.0 || m["tenant"] != "idle" {
			t.Fatalf("idle's health: %v", m)
		}
	})
	t.Run("an unknown tenant is 404, a bad id 400", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("GET", "/v1/admin/tenants/nobody/health", e.op, nil), 404, "tenant_not_found")
		want(t, e.req("GET", "/v1/admin/tenants/Bad%0Aid/health", e.op, nil), 400, "")
	})
	t.Run("a tenant reads its own health only", func(t *testing.T) {
		e := e.on(t)
		_, w15, m := healthOf(t, e.req("GET", "/v1/health", reader, nil))
		if m["tenant"] != "alpha" || w15["requests"] != 6.0 {
			t.Fatalf("alpha's own health: %v", m)
		}
		// No query reaches another tenant's; an act-as header is refused.
		_, _, m = healthOf(t, e.req("GET", "/v1/health?tenant=beta&id=beta", reader, nil))
		if m["tenant"] != "alpha" {
			t.Fatalf("?tenant=beta answered %v", m["tenant"])
		}
		want(t, e.req("GET", "/v1/health", reader, nil, "Bulkhead-Act-As-Tenant", "beta"), 403, "forbidden")
	})
	t.Run("tenant credentials cannot use the operator's endpoint", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("GET", "/v1/admin/tenants/beta/health", a, nil), 403, "forbidden")
		want(t, e.req("GET", "/v1/admin/tenants/alpha/health", a, nil), 403, "forbidden")
		want(t, e.req("GET", "/v1/health", e.op, nil), 403, "forbidden")
		want(t, e.req("GET", "/v1/health", "", nil), 401, "")
	})
	t.Run("a support agent acting as the tenant is refused", func(t *testing.T) {
		e := e.on(t)
		r := e.req("POST", "/v1/admin/support-agents", e.op, `{"name":"sam"}`)
		want(t, r, 201, "")
		ag := r.json(t)
		agent := ag["token"].(string)
		want(t, e.req("POST", "/v1/admin/tenants/alpha/grants", e.op, `{"agent_id":"`+ag["id"].(string)+`","reason":"ticket 1","expires_in":"1h"}`), 201, "")
		_, before, _ := healthOf(t, e.req("GET", "/v1/admin/tenants/alpha/health", e.op, nil))
		want(t, e.req("GET", "/v1/collections", agent, nil, "Bulkhead-Act-As-Tenant", "alpha"), 200, "")
		want(t, e.req("GET", "/v1/health", agent, nil, "Bulkhead-Act-As-Tenant", "alpha"), 403, "forbidden")
		// Its requests are not alpha's load, nor are the operator's.
		_, after, _ := healthOf(t, e.req("GET", "/v1/admin/tenants/alpha/health", e.op, nil))
		if after["requests"] != before["requests"] {
			t.Fatalf("alpha's requests went from %v to %v with the agent's and operator's reads", before["requests"], after["requests"])
		}
	})
}

func TestHealthCountsErrorsAndThrottles(t *testing.T) {
	e := newEnvIn(t, t.TempDir(), server.Options{})
	a := e.tenantWithKey("alpha", "pooled")
	want(t, e.req("PATCH", "/v1/admin/tenants/alpha", e.op, `{"limits":{"burst":7}}`), 200, "")
	// The burst of 7 runs out: the rest are 429 rate_limited.
	n429 := 0
	for i := range 20 {
		r := e.req("GET", "/v1/collections/notes/records/x"+fmt.Sprint(i), a, nil)
		if r.status == 429 {
			n429++
		}
	}
	if n429 < 10 {
		t.Fatalf("only %d of 20 requests were throttled with a burst of 7", n429)
	}
	_, w15, m := healthOf(t, e.req("GET", "/v1/admin/tenants/alpha/health", e.op, nil))
	if w15["throttled"] != float64(n429) || w15["requests"] != 20.0 || w15["errors"] != 0.0 {
		t.Fatalf("health %v, want %d throttled of 20 and no errors", w15, n429)
	}
	if w15["p99_ms"].(float64) <= 0 {
		t.Fatalf("no latency: %v", m)
	}
}

func TestDeletedTenantHealthStartsFromZero(t *testing.T) {
	e := newEnv(t)
	a := e.tenantWithKey("gamma", "pooled")
	for range 3 {
		want(t, e.req("GET", "/v1/collections", a, nil), 200, "")
	}
	scrape := string(e.req("GET", "/metrics", "", nil).body)
	if !strings.Contains(scrape, `tenant="gamma"`) {
		t.Fatal("gamma has no labelled series before deletion")
	}
	want(t, e.req("DELETE", "/v1/admin/tenants/gamma", e.op, nil), 204, "")
	if s := string(e.req("GET", "/metrics", "", nil).body); strings.Contains(s, `tenant="gamma"`) {
		t.Fatalf("gamma's series outlive its deletion:\n%s", grepLines(s, "gamma"))
	}
	a = e.tenantWithKey("gamma", "pooled")
	want(t, e.req("GET", "/v1/collections", a, nil), 200, "")
	_, w15, _ := healthOf(t, e.req("GET", "/v1/admin/tenants/gamma/health", e.op, nil))
	if w15["requests"] != 1.0 {
		t.Fatalf("re-created gamma has %v requests, want 1 (its own)", w15["requests"])
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A change-feed stream lasts as long as its client stays: it is neither a
// request nor a latency of the tenant's health (a refused stream is).
func TestHealthLeavesServedStreamsOut(t *testing.T) {
	e := newEnv(t)
	a := e.tenantWithKey("delta", "pooled")
	st, _ := e.openStream(a, "")
	for range 3 {
		want(t, e.req("GET", "/v1/collections", a, nil), 200, "")
	}
	st.close()
	ended := func() bool {
		return strings.Contains(string(e.req("GET", "/metrics", "", nil).body), `bulkhead_event_streams_ended_total{reason="client"} 1`)
	}
	for !ended() {
		time.Sleep(10 * time.Millisecond)
	}
	want(t, e.req("GET", "/v1/events?after=garbage", a, nil), 400, "invalid_event_position")
	_, w15, _ := healthOf(t, e.req("GET", "/v1/admin/tenants/delta/health", e.op, nil))
	if w15["requests"] != 4.0 {
		t.Fatalf("delta's health counts %v requests, want 4: three lists and the refused stream, not the served one", w15["requests"])
	}
}
