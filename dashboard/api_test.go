package dashboard_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/dashboard"
	"github.com/bulkhead-dev/bulkhead/server"
)

func TestEmbeddedAssetsStayUnder150KB(t *testing.T) {
	n, err := dashboard.AssetBytes()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || n > 150<<10 {
		t.Fatalf("the dashboard's embedded assets are %d bytes; the budget is 150 KB (153600 bytes)", n)
	}
	t.Logf("embedded assets: %d bytes", n)
}

func TestEveryAnswerCarriesTheSecurityHeaders(t *testing.T) {
	e := newEnv(t, server.Options{})
	c := e.mustSignIn()
	for _, p := range []string{"/dashboard/", "/dashboard/assets/dashboard.js", "/dashboard/assets/dashboard.css",
		"/dashboard/api/fleet", "/dashboard/api/nope", "/dashboard/nope"} {
		r := e.get(p, c)
		h := r.header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", p, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP %q allows inline code", p, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: X-Content-Type-Options %q, Referrer-Policy %q", p, h.Get("X-Content-Type-Options"), h.Get("Referrer-Policy"))
		}
		if strings.Contains(p, "/api/") && h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", p, h.Get("Cache-Control"))
		}
	}
	if r := e.get("/dashboard/api/nope", c); r.status != 404 || r.code() != "route_not_found" {
		t.Errorf("unknown API: %d %q", r.status, r.code())
	}
	if r := e.do("DELETE", "/dashboard/api/fleet", nil, "Cookie", c.Name+"="+c.Value); r.status != 405 {
		t.Errorf("DELETE on the API: %d, want 405", r.status)
	}
	if r := e.get("/dashboard", nil); r.status != 303 || r.header.Get("Location") != "/dashboard/" {
		t.Errorf("/dashboard: %d to %q, want a redirect to /dashboard/", r.status, r.header.Get("Location"))
	}
}

func TestTenantDrillDownRefusesBadAndUnknownIDs(t *testing.T) {
	e := newEnv(t, server.Options{})
	c := e.mustSignIn()
	for path, want := range map[string]string{
		"/dashboard/api/tenants/ghost":          "tenant_not_found",
		"/dashboard/api/tenants/Bad_ID":         "invalid_tenant_id",
		"/dashboard/api/tenants/a%0Ab":          "invalid_tenant_id",
		"/dashboard/api/tenants/acme%2F..%2Fx":  "invalid_tenant_id",
		"/dashboard/api/tenants/":               "invalid_tenant_id",
		"/dashboard/api/audit?limit=0":          "invalid_limit",
		"/dashboard/api/audit?limit=1000000000": "invalid_limit",
	} {
		if r := e.get(path, c); r.code() != want || r.status >= 500 {
			t.Errorf("%s: %d %q, want %q: %s", path, r.status, r.code(), want, r.body)
		}
	}
}

// fleetOf reads the fleet answer.
func fleetOf(t testing.TB, e *env, c string) dashboard.Fleet {
	t.Helper()
	var f dashboard.Fleet
	r := e.do("GET", "/dashboard/api/fleet", nil, "Cookie", c)
	if err := json.Unmarshal(r.body, &f); err != nil || r.status != 200 {
		t.Fatalf("fleet: %d %v %s", r.status, err, r.body)
	}
	return f
}

func TestFleetShowsEveryTenantWithPlacementUsageAndQuota(t *testing.T) {
	e := newEnv(t, server.Options{})
	key := e.tenant("acme", "Acme Corp")
	e.tenant("globex", "Globex")
	e.admin("PATCH", "/v1/admin/tenants/globex", map[string]string{"tier": "enterprise"}, 200)
	r := e.do("PUT", "/v1/collections/notes/records/n1", strings.NewReader(`{"text":"hello"}`), "Authorization", "Bearer "+key)
	if r.status != 201 {
		t.Fatalf("write: %d %s", r.status, r.body)
	}
	c := e.mustSignIn()
	f := fleetOf(t, e, c.Name+"="+c.Value)
	if len(f.Tenants) != 2 || f.Tenants[0].ID.String() != "acme" || f.Tenants[1].ID.String() != "globex" {
		t.Fatalf("fleet %+v, want acme and globex", f.Tenants)
	}
	a, g := f.Tenants[0], f.Tenants[1]
	if a.Name != "Acme Corp" || a.Tier != "standard" || a.State != "active" || a.Mode != "pooled" || a.Shard != "local" {
		t.Errorf("acme row %+v", a)
	}
	if g.Tier != "enterprise" {
		t.Errorf("globex tier %q", g.Tier)
	}
	if a.Usage == nil || a.Usage.Records != 1 || a.Usage.Bytes == 0 {
		t.Errorf("acme usage %+v, want the one record just written", a.Usage)
	}
	if a.Quota == nil || a.Quota.MaxRecords == 0 || g.Quota == nil || g.Quota.MaxBytes <= a.Quota.MaxBytes {
		t.Errorf("quotas acme %+v globex %+v: want the tiers' quotas", a.Quota, g.Quota)
	}
	// The write went through the gate: the monitor counted it for acme.
	if a.Health == nil || a.Health.Requests != 1 || g.Health != nil {
		t.Errorf("health acme %+v globex %+v: want acme's one request, nothing for globex", a.Health, g.Health)
	}
}

func TestNoAnswerHoldsRecordsOrTokens(t *testing.T) {
	e := newEnv(t, server.Options{})
	const canary = "CANARY-7f3a9c-record-value"
	secrets := []string{e.op, canary, "canary-field-name"}
	for _, id := range []string{"acme", "globex"} {
		key := e.tenant(id, "Tenant "+id)
		secrets = append(secrets, key, key[len(key)-43:])
		for _, rec := range []string{"n1", "n2"} {
			body := `{"canary-field-name":"` + canary + `","n":"` + rec + `"}`
			if r := e.do("PUT", "/v1/collections/notes/records/"+rec, strings.NewReader(body), "Authorization", "Bearer "+key); r.status != 201 {
				t.Fatalf("write: %d %s", r.status, r.body)
			}
			e.do("GET", "/v1/collections/notes/records/"+rec, nil, "Authorization", "Bearer "+key)
		}
	}
	c := e.mustSignIn()
	var answers []resp
	for _, p := range []string{"/dashboard/", "/dashboard/api/fleet", "/dashboard/api/top", "/dashboard/api/audit?limit=200",
		"/dashboard/api/tenants/acme", "/dashboard/api/tenants/globex", "/dashboard/assets/dashboard.js"} {
		r := e.get(p, c)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
		answers = append(answers, r)
	}
	for i, r := range answers {
		all := string(r.body) + " " + strings.Join(r.header.Values("Set-Cookie"), " ")
		for _, s := range secrets {
			if strings.Contains(all, s) {
				t.Errorf("answer #%d holds %q", i, s)
			}
		}
	}
	// And it did show the tenants' counts: the test looked at real answers.
	if !strings.Contains(string(answers[1].body), `"records":2`) {
		t.Fatalf("the fleet does not show the records' count: %s", answers[1].body)
	}
}
