package server_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func TestControlPlane(t *testing.T) {
	e := newEnv(t)

	t.Run("provision with defaults", func(t *testing.T) {
		e := e.on(t)
		r := e.req("POST", "/v1/admin/tenants", e.op, `{"id":"acme"}`)
		want(t, r, 201, "")
		m := r.json(t)
		p, _ := m["placement"].(map[string]any)
		if m["id"] != "acme" || m["name"] != "acme" || m["tier"] != "standard" || m["state"] != "active" ||
			p["mode"] != "pooled" || p["shard"] != "local" || m["created_at"] == nil || m["updated_at"] == nil {
			t.Fatalf("tenant: %s", r.body)
		}
		if r.header.Get("Location") != "/v1/admin/tenants/acme" {
			t.Errorf("Location %q", r.header.Get("Location"))
		}
	})
	t.Run("provision with every field", func(t *testing.T) {
		e := e.on(t)
		r := e.req("POST", "/v1/admin/tenants", e.op, `{"id":"beta-2","name":"Beta Corp","isolation":"database","tier":"enterprise"}`)
		want(t, r, 201, "")
		m := r.json(t)
		if m["name"] != "Beta Corp" || m["tier"] != "enterprise" || m["placement"].(map[string]any)["mode"] != "database" {
			t.Fatalf("tenant: %s", r.body)
		}
	})
	t.Run("provisioning an existing id is 409", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("POST", "/v1/admin/tenants", e.op, `{"id":"acme","isolation":"database"}`), 409, "tenant_exists")
		r := e.req("GET", "/v1/admin/tenants/acme", e.op, nil)
		if r.json(t)["placement"].(map[string]any)["mode"] != "pooled" {
			t.Fatalf("the existing tenant changed: %s", r.body)
		}
	})
	t.Run("bad provisioning requests are 400 and create nothing", func(t *testing.T) {
		for _, tc := range []struct{ body, code string }{
			{`{"id":"A"}`, "invalid_tenant_id"},
			{`{"id":"x"}`, "invalid_tenant_id"},
			{`{"id":"admin"}`, "invalid_tenant_id"},
			{`{"id":"gamma-"}`, "invalid_tenant_id"},
			{`{"id":"1gamma"}`, "invalid_tenant_id"},
			{`{"id":"` + strings.Repeat("g", 41) + `"}`, "invalid_tenant_id"},
			{`{}`, "invalid_tenant_id"},
			{`{"id":"gamma","isolation":"shared"}`, "invalid_isolation"},
			{`{"id":"gamma","isolation":"schema"}`, "isolation_unsupported"},
			{`{"id":"gamma","tier":"gold"}`, "invalid_tier"},
			{`{"id":"gamma","name":""}`, "invalid_name"},
			{`{"id":"gamma","name":"bad\u0007name"}`, "invalid_name"},
			{`{"id":"gamma","colour":"red"}`, "invalid_json"},
			{`{"id":"gamma"`, "invalid_json"},
			{`{"id":7}`, "invalid_json"},
			{`["gamma"]`, "invalid_json"},
			{`{"id":"gamma"}{"id":"delta"}`, "invalid_json"},
			{``, "invalid_json"},
		} {
			r := e.req("POST", "/v1/admin/tenants", e.op, tc.body)
			if r.status != 400 || r.code() != tc.code {
				t.Errorf("%s: %d %s, want 400 %s", tc.body, r.status, r.body, tc.code)
			}
		}
		want(t, e.req("GET", "/v1/admin/tenants/gamma", e.op, nil), 404, "tenant_not_found")
	})
	t.Run("list pages through every tenant", func(t *testing.T) {
		e := e.on(t)
		for _, id := range []string{"delta", "epsilon", "zeta"} {
			e.createTenant(id, "pooled")
		}
		var ids []string
		cursor := ""
		for i := 0; i < 10; i++ {
			path := "/v1/admin/tenants?limit=2"
			if cursor != "" {
				path += "&cursor=" + url.QueryEscape(cursor)
			}
			r := e.req("GET", path, e.op, nil)
			want(t, r, 200, "")
			var page struct {
				Items      []struct{ ID string }
				NextCursor string `json:"next_cursor"`
			}
			if err := json.Unmarshal(r.body, &page); err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Items {
				ids = append(ids, it.ID)
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		if got := strings.Join(ids, ","); got != "acme,beta-2,delta,epsilon,zeta" {
			t.Fatalf("listed %s", got)
		}
		want(t, e.req("GET", "/v1/admin/tenants?cursor=%21%21", e.op, nil), 400, "invalid_cursor")
		want(t, e.req("GET", "/v1/admin/tenants?limit=0", e.op, nil), 400, "invalid_limit")
		want(t, e.req("GET", "/v1/admin/tenants?limit=x", e.op, nil), 400, "invalid_limit")
	})
	t.Run("show adds usage", func(t *testing.T) {
		e := e.on(t)
		tok, _ := e.createKey("beta-2", "writer")
		for _, p := range []string{"/v1/collections/a/records/1", "/v1/collections/a/records/2", "/v1/collections/b/records/1"} {
			want(t, e.req("PUT", p, tok, `{}`), 201, "")
		}
		r := e.req("GET", "/v1/admin/tenants/beta-2", e.op, nil)
		want(t, r, 200, "")
		u, _ := r.json(t)["usage"].(map[string]any)
		if u["collections"] != float64(2) || u["records"] != float64(3) {
			t.Fatalf("usage: %s", r.body)
		}
		want(t, e.req("GET", "/v1/admin/tenants/nobody", e.op, nil), 404, "tenant_not_found")
		want(t, e.req("GET", "/v1/admin/tenants/No_Body", e.op, nil), 400, "invalid_tenant_id")
	})
	t.Run("patch changes name and tier", func(t *testing.T) {
		e := e.on(t)
		r := e.req("PATCH", "/v1/admin/tenants/acme", e.op, `{"name":"Acme Inc","tier":"free"}`)
		want(t, r, 200, "")
		if m := r.json(t); m["name"] != "Acme Inc" || m["tier"] != "free" {
			t.Fatalf("patched: %s", r.body)
		}
		want(t, e.req("PATCH", "/v1/admin/tenants/acme", e.op, `{"tier":"gold"}`), 400, "invalid_tier")
		want(t, e.req("PATCH", "/v1/admin/tenants/acme", e.op, `{"name":""}`), 400, "invalid_name")
		want(t, e.req("PATCH", "/v1/admin/tenants/acme", e.op, `{"id":"other"}`), 400, "invalid_json")
		want(t, e.req("PATCH", "/v1/admin/tenants/nobody", e.op, `{"tier":"free"}`), 404, "tenant_not_found")
		r = e.req("GET", "/v1/admin/tenants/acme", e.op, nil)
		if m := r.json(t); m["name"] != "Acme Inc" || m["tier"] != "free" {
			t.Fatalf("a refused patch changed the tenant: %s", r.body)
		}
	})
	t.Run("keys are issued once, listed without tokens and revoked", func(t *testing.T) {
		e := e.on(t)
		r := e.req("POST", "/v1/admin/tenants/acme/keys", e.op, `{"role":"reader","name":"dashboard"}`)
		want(t, r, 201, "")
		k := r.json(t)
		tok, _ := k["token"].(string)
		if !strings.HasPrefix(tok, "bk_") || k["role"] != "reader" || k["name"] != "dashboard" || k["tenant"] != "acme" || k["id"] == "" {
			t.Fatalf("key: %s", r.body)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("a response with a token is cacheable")
		}
		want(t, e.req("POST", "/v1/admin/tenants/acme/keys", e.op, `{"role":"root"}`), 400, "invalid_role")
		want(t, e.req("POST", "/v1/admin/tenants/acme/keys", e.op, `{"role":"admin","name":""}`), 400, "invalid_name")
		want(t, e.req("POST", "/v1/admin/tenants/nobody/keys", e.op, `{"role":"admin"}`), 404, "tenant_not_found")
		r = e.req("GET", "/v1/admin/tenants/acme/keys", e.op, nil)
		want(t, r, 200, "")
		if strings.Contains(string(r.body), tok) || strings.Contains(string(r.body), "token") ||
			!strings.Contains(string(r.body), k["id"].(string)) {
			t.Fatalf("key list: %s", r.body)
		}
		want(t, e.req("GET", "/v1/admin/tenants/nobody/keys", e.op, nil), 404, "tenant_not_found")
		want(t, e.req("DELETE", "/v1/admin/tenants/acme/keys/nokey", e.op, nil), 404, "key_not_found")
		want(t, e.req("DELETE", "/v1/admin/tenants/acme/keys/"+k["id"].(string), e.op, nil), 204, "")
		r = e.req("GET", "/v1/admin/tenants/acme/keys", e.op, nil)
		if !strings.Contains(string(r.body), "revoked_at") {
			t.Fatalf("revoked key not marked: %s", r.body)
		}
	})
	t.Run("health and readiness", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("GET", "/healthz", "", nil), 200, "")
		want(t, e.req("GET", "/readyz", "", nil), 200, "")
		want(t, e.req("POST", "/healthz", "", nil), 405, "method_not_allowed")
	})
	t.Run("readiness fails once the stores are closed", func(t *testing.T) {
		e := e.on(t)
		if err := e.srv.Close(); err != nil {
			t.Fatal(err)
		}
		want(t, e.req("GET", "/readyz", "", nil), 503, "unavailable")
		want(t, e.req("GET", "/healthz", "", nil), 200, "")
	})
}
