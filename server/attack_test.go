package server_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
)

// auditEntries returns the entries of a chain through the operator API.
func (e *env) auditEntries(chain string) []map[string]any {
	e.t.Helper()
	r := e.req("GET", "/v1/admin/audit?limit=1000&chain="+chain, e.op, nil)
	want(e.t, r, 200, "")
	var out struct{ Items []map[string]any }
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatal(err)
	}
	return out.Items
}

// hasEntry reports whether entries hold one with every field of match.
func hasEntry(entries []map[string]any, match map[string]string) bool {
next:
	for _, en := range entries {
		for k, v := range match {
			s, _ := en[k].(string)
			if !strings.Contains(s, v) {
				continue next
			}
		}
		return true
	}
	return false
}

func TestAttackHeaderSpoofing(t *testing.T) {
	e := newEnv(t)
	a := e.tenantWithKey("alpha", "pooled")
	b := e.tenantWithKey("beta", "pooled")
	want(t, e.req("PUT", "/v1/collections/notes/records/b1", b, `{"owner":"beta"}`), 201, "")

	t.Run("X-Tenant-ID does not change the tenant", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("GET", "/v1/collections/notes/records/b1", a, nil, "X-Tenant-ID", "beta"), 404, "not_found")
		want(t, e.req("PUT", "/v1/collections/notes/records/a1", a, `{"owner":"alpha"}`, "X-Tenant-ID", "beta"), 201, "")
		want(t, e.req("GET", "/v1/collections/notes/records/a1", b, nil), 404, "not_found")
		want(t, e.req("GET", "/v1/collections/notes/records/a1", a, nil), 200, "")
	})
	t.Run("two Authorization headers are refused", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("GET", "/v1/collections/notes/records/b1", "", nil,
			"Authorization", "Bearer "+a, "Authorization", "Bearer "+b), 401, "unauthenticated")
		want(t, e.req("GET", "/v1/admin/tenants", "", nil,
			"Authorization", "Bearer "+e.op, "Authorization", "Bearer "+a), 401, "unauthenticated")
	})
	t.Run("Bulkhead-Act-As-Tenant with a tenant key is forbidden", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("GET", "/v1/collections/notes/records/b1", a, nil, "Bulkhead-Act-As-Tenant", "beta"), 403, "forbidden")
		want(t, e.req("GET", "/v1/collections", a, nil, "Bulkhead-Act-As-Tenant", "alpha"), 403, "forbidden")
	})
	t.Run("the operator token stays out of the data plane, act-as or not", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("GET", "/v1/collections/notes/records/b1", e.op, nil), 403, "forbidden")
		want(t, e.req("GET", "/v1/collections/notes/records/b1", e.op, nil, "Bulkhead-Act-As-Tenant", "beta"), 403, "forbidden")
	})
	t.Run("denials are in the audit log", func(t *testing.T) {
		e := e.on(t)
		if !hasEntry(e.auditEntries("alpha"), map[string]string{"action": "record.read", "decision": "deny:forbidden", "principal": "tenant_key:"}) {
			t.Errorf("alpha's chain lacks the refused act-as: %v", e.auditEntries("alpha"))
		}
		if !hasEntry(e.auditEntries("_control"), map[string]string{"action": "record.read", "decision": "deny:unauthenticated", "principal": "anonymous"}) {
			t.Errorf("the control chain lacks the duplicate-header refusal")
		}
		if !hasEntry(e.auditEntries("_control"), map[string]string{"action": "record.read", "decision": "deny:forbidden", "principal": "operator:"}) {
			t.Errorf("the control chain lacks the operator's refusal")
		}
	})
}

func TestAttackKeysAndRoles(t *testing.T) {
	e := newEnv(t)
	admin := e.tenantWithKey("alpha", "pooled")
	e.createTenant("beta", "pooled")
	bTok, bKey := e.createKey("beta", "writer")
	reader, _ := e.createKey("alpha", "reader")
	writer, _ := e.createKey("alpha", "writer")

	t.Run("a reader cannot write", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("PUT", "/v1/collections/notes/records/x", reader, `{}`), 403, "forbidden")
	})
	t.Run("writers and readers cannot manage keys", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("GET", "/v1/keys", writer, nil), 403, "forbidden")
		want(t, e.req("POST", "/v1/keys", reader, `{"role":"admin"}`), 403, "forbidden")
	})
	t.Run("a tenant admin manages its own keys", func(t *testing.T) {
		e := e.on(t)
		r := e.req("POST", "/v1/keys", admin, `{"role":"reader","name":"ci"}`)
		want(t, r, 201, "")
		k := r.json(t)
		if k["tenant"] != "alpha" || !strings.HasPrefix(k["token"].(string), "bk_") {
			t.Fatalf("new key: %s", r.body)
		}
		want(t, e.req("GET", "/v1/collections", k["token"].(string), nil), 200, "")
		r = e.req("GET", "/v1/keys", admin, nil)
		want(t, r, 200, "")
		if strings.Contains(string(r.body), bKey) || strings.Contains(string(r.body), "token") {
			t.Fatalf("key list shows another tenant's key or a token: %s", r.body)
		}
		want(t, e.req("DELETE", "/v1/keys/"+k["id"].(string), admin, nil), 204, "")
		want(t, e.req("GET", "/v1/collections", k["token"].(string), nil), 401, "unauthenticated")
	})
	t.Run("a tenant admin touching another tenant's key gets 404", func(t *testing.T) {
		e := e.on(t)
		missing := e.req("DELETE", "/v1/keys/aaaaaaaaaaaaaaaaaaaa", admin, nil)
		foreign := e.req("DELETE", "/v1/keys/"+bKey, admin, nil)
		want(t, foreign, 404, "key_not_found")
		if string(missing.body) != string(foreign.body) {
			t.Errorf("another tenant's key and a missing key differ:\n%s\n%s", missing.body, foreign.body)
		}
		want(t, e.req("GET", "/v1/collections", bTok, nil), 200, "")
	})
	t.Run("a revoked key is refused", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("DELETE", "/v1/admin/tenants/beta/keys/"+bKey, e.op, nil), 204, "")
		want(t, e.req("GET", "/v1/collections", bTok, nil), 401, "unauthenticated")
	})
	t.Run("a suspended tenant's key gets tenant_suspended", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("POST", "/v1/admin/tenants/alpha/suspend", e.op, nil), 200, "")
		want(t, e.req("GET", "/v1/collections", admin, nil), 403, "tenant_suspended")
		want(t, e.req("GET", "/v1/keys", admin, nil), 403, "tenant_suspended")
		want(t, e.req("POST", "/v1/admin/tenants/alpha/resume", e.op, nil), 200, "")
	})
	t.Run("key operations are audited on the tenant's chain", func(t *testing.T) {
		e := e.on(t)
		es := e.auditEntries("alpha")
		if !hasEntry(es, map[string]string{"action": "key.manage", "decision": "allow", "principal": "tenant_key:"}) {
			t.Errorf("alpha's chain lacks the key operations: %v", es)
		}
		if !hasEntry(e.auditEntries("_control"), map[string]string{"action": "key.revoke", "resource": "tenant/beta", "principal": "operator:"}) {
			t.Errorf("the control chain lacks the operator's revocation")
		}
	})
}

func TestSupportAccess(t *testing.T) { testSupportAccess(t, server.Options{}) }

func testSupportAccess(t *testing.T, opts server.Options) {
	clk := &clock{}
	opts.Now = clk.now
	e := newEnvIn(t, t.TempDir(), opts)
	a := e.tenantWithKey("alpha", "pooled")
	b := e.tenantWithKey("beta", "pooled")
	want(t, e.req("PUT", "/v1/collections/notes/records/a1", a, `{"v":1}`), 201, "")
	want(t, e.req("PUT", "/v1/collections/notes/records/b1", b, `{"v":1}`), 201, "")

	want(t, e.req("POST", "/v1/admin/support-agents", a, `{"name":"eve"}`), 403, "forbidden")
	r := e.req("POST", "/v1/admin/support-agents", e.op, `{"name":"sam"}`)
	want(t, r, 201, "")
	ag := r.json(t)
	agent, agentID := ag["token"].(string), ag["id"].(string)
	if !strings.HasPrefix(agent, "bks_") {
		t.Fatalf("agent token %q", agent)
	}
	read := func(tenantID string, hdr ...string) resp {
		return e.req("GET", "/v1/collections/notes/records/"+tenantID[:1]+"1", agent, nil,
			append([]string{"Bulkhead-Act-As-Tenant", tenantID}, hdr...)...)
	}

	t.Run("without a grant the agent reads nothing", func(t *testing.T) {
		e := e.on(t)
		want(t, read("alpha"), 403, "forbidden")
		want(t, e.req("GET", "/v1/collections", agent, nil), 403, "forbidden")
	})
	t.Run("grants need a reason and a bounded, future expiry", func(t *testing.T) {
		e := e.on(t)
		for _, body := range []string{
			`{"agent_id":"` + agentID + `","expires_in":"1h"}`,
			`{"agent_id":"` + agentID + `","reason":"T-1"}`,
			`{"agent_id":"` + agentID + `","reason":"T-1","expires_in":"25h"}`,
			`{"agent_id":"` + agentID + `","reason":"T-1","expires_in":"-1h"}`,
			`{"agent_id":"` + agentID + `","reason":"T-1","expires_at":"` + clk.now().Add(-time.Minute).Format(time.RFC3339) + `"}`,
		} {
			want(t, e.req("POST", "/v1/admin/tenants/alpha/grants", e.op, body), 400, "invalid_grant")
		}
		want(t, e.req("POST", "/v1/admin/tenants/alpha/grants", e.op,
			`{"agent_id":"aaaaaaaaaaaaaaaaaaaa","reason":"T-1","expires_in":"1h"}`), 404, "agent_not_found")
		want(t, e.req("POST", "/v1/admin/tenants/alpha/grants", a,
			`{"agent_id":"`+agentID+`","reason":"T-1","expires_in":"1h"}`), 403, "forbidden")
	})

	r = e.req("POST", "/v1/admin/tenants/beta/grants", e.op, `{"agent_id":"`+agentID+`","reason":"ticket 42","expires_in":"1h"}`)
	want(t, r, 201, "")
	grant := r.json(t)

	t.Run("a grant for beta does not open alpha", func(t *testing.T) {
		want(t, read("alpha"), 403, "forbidden")
	})
	t.Run("with a live grant the agent reads beta", func(t *testing.T) {
		e := e.on(t)
		want(t, read("beta"), 200, "")
		want(t, e.req("GET", "/v1/collections", agent, nil, "Bulkhead-Act-As-Tenant", "beta"), 200, "")
	})
	t.Run("with a live grant the agent still cannot write or manage keys", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("PUT", "/v1/collections/notes/records/b1", agent, `{"v":9}`, "Bulkhead-Act-As-Tenant", "beta"), 403, "forbidden")
		want(t, e.req("DELETE", "/v1/collections/notes/records/b1", agent, nil, "Bulkhead-Act-As-Tenant", "beta"), 403, "forbidden")
		want(t, e.req("GET", "/v1/keys", agent, nil, "Bulkhead-Act-As-Tenant", "beta"), 403, "forbidden")
		want(t, e.req("GET", "/v1/admin/tenants/beta", agent, nil), 403, "forbidden")
	})
	t.Run("act-as needs exactly one valid tenant id", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("GET", "/v1/collections/notes/records/b1", agent, nil), 403, "forbidden")
		want(t, read("beta", "Bulkhead-Act-As-Tenant", "alpha"), 403, "forbidden")
		want(t, e.req("GET", "/v1/collections/notes/records/b1", agent, nil, "Bulkhead-Act-As-Tenant", "Beta!"), 403, "forbidden")
	})
	t.Run("act-as requests are audited on the tenant's chain", func(t *testing.T) {
		e := e.on(t)
		es := e.auditEntries("beta")
		if !hasEntry(es, map[string]string{"principal": "support:" + agentID, "action": "record.read", "decision": "allow"}) {
			t.Errorf("beta's chain lacks the act-as read: %v", es)
		}
		if !hasEntry(es, map[string]string{"action": "grant.create", "resource": grant["id"].(string)}) {
			t.Errorf("beta's chain lacks the grant")
		}
		if !hasEntry(es, map[string]string{"principal": "support:" + agentID, "action": "record.write", "decision": "deny:forbidden"}) {
			t.Errorf("beta's chain lacks the refused support write")
		}
	})
	t.Run("the grant expires with the clock", func(t *testing.T) {
		clk.advance(61 * time.Minute)
		want(t, read("beta"), 403, "forbidden")
	})
	t.Run("a revoked grant and a revoked agent are refused", func(t *testing.T) {
		e := e.on(t)
		r := e.req("POST", "/v1/admin/tenants/beta/grants", e.op, `{"agent_id":"`+agentID+`","reason":"ticket 43","expires_in":"30m"}`)
		want(t, r, 201, "")
		gid := r.json(t)["id"].(string)
		want(t, read("beta"), 200, "")
		lr := e.req("GET", "/v1/admin/tenants/beta/grants", e.op, nil)
		want(t, lr, 200, "")
		if !strings.Contains(string(lr.body), gid) || !strings.Contains(string(lr.body), "ticket 43") {
			t.Fatalf("grant list: %s", lr.body)
		}
		want(t, e.req("DELETE", "/v1/admin/tenants/alpha/grants/"+gid, e.op, nil), 404, "grant_not_found")
		want(t, e.req("DELETE", "/v1/admin/tenants/beta/grants/"+gid, e.op, nil), 204, "")
		want(t, read("beta"), 403, "forbidden")
		r = e.req("POST", "/v1/admin/tenants/beta/grants", e.op, `{"agent_id":"`+agentID+`","reason":"ticket 44","expires_in":"30m"}`)
		want(t, r, 201, "")
		want(t, read("beta"), 200, "")
		want(t, e.req("DELETE", "/v1/admin/support-agents/"+agentID, e.op, nil), 204, "")
		want(t, read("beta"), 401, "unauthenticated")
	})
	t.Run("a grant does not survive its tenant", func(t *testing.T) {
		e := e.on(t)
		r := e.req("POST", "/v1/admin/support-agents", e.op, `{"name":"kim"}`)
		want(t, r, 201, "")
		kim, kimID := r.json(t)["token"].(string), r.json(t)["id"].(string)
		want(t, e.req("POST", "/v1/admin/tenants/alpha/grants", e.op, `{"agent_id":"`+kimID+`","reason":"T-9","expires_in":"2h"}`), 201, "")
		want(t, e.req("GET", "/v1/collections", kim, nil, "Bulkhead-Act-As-Tenant", "alpha"), 200, "")
		want(t, e.req("DELETE", "/v1/admin/tenants/alpha", e.op, nil), 204, "")
		clk.advance(time.Second) // the new tenant is created strictly later
		e.createTenant("alpha", "pooled")
		want(t, e.req("GET", "/v1/collections", kim, nil, "Bulkhead-Act-As-Tenant", "alpha"), 403, "forbidden")
	})
}

func TestAuditEndpoints(t *testing.T) {
	e := newEnv(t)
	a := e.tenantWithKey("alpha", "pooled")
	b := e.tenantWithKey("beta", "pooled")
	reader, _ := e.createKey("alpha", "reader")
	for i := 0; i < 3; i++ {
		want(t, e.req("POST", "/v1/keys", a, `{"role":"reader"}`), 201, "")
	}
	want(t, e.req("POST", "/v1/keys", b, `{"role":"reader"}`), 201, "")
	want(t, e.req("GET", "/v1/audit", reader, nil), 403, "forbidden")
	want(t, e.req("GET", "/v1/admin/audit", a, nil), 403, "forbidden")

	r := e.req("GET", "/v1/audit?limit=2", a, nil)
	want(t, r, 200, "")
	var page struct {
		Items     []map[string]any
		NextAfter int64 `json:"next_after"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.NextAfter != 2 {
		t.Fatalf("first page: %s", r.body)
	}
	r = e.req("GET", "/v1/audit?after=2&limit=1000", a, nil)
	want(t, r, 200, "")
	all := string(e.req("GET", "/v1/audit?limit=1000", a, nil).body)
	if strings.Contains(all, "beta") || strings.Contains(all, "_control") || strings.Contains(all, "bk_") {
		t.Fatalf("alpha's audit shows another chain or a secret: %s", all)
	}
	if !strings.Contains(all, `"chain":"alpha"`) {
		t.Fatalf("alpha's audit is empty: %s", all)
	}
	want(t, e.req("GET", "/v1/audit?limit=0", a, nil), 400, "invalid_limit")
	want(t, e.req("GET", "/v1/admin/audit?chain=Not-A-Tenant", e.op, nil), 400, "invalid_tenant_id")
	ctl := e.auditEntries("_control")
	if !hasEntry(ctl, map[string]string{"action": "tenant.create", "resource": "", "principal": "operator:"}) {
		t.Fatalf("the control chain lacks tenant.create: %v", ctl)
	}
}

func TestPolicyDirIsEnforced(t *testing.T) {
	dir := t.TempDir()
	pol := `@id("no-deletes-in-archive")
forbid (principal, action == Action::"record.delete", resource)
when { resource is Collection && resource.name == "archive" };
`
	if err := os.WriteFile(filepath.Join(dir, "archive.cedar"), []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnvIn(t, t.TempDir(), server.Options{PolicyDir: dir})
	a := e.tenantWithKey("alpha", "pooled")
	for _, c := range []string{"archive", "notes"} {
		want(t, e.req("PUT", "/v1/collections/"+c+"/records/r1", a, `{}`), 201, "")
	}
	want(t, e.req("DELETE", "/v1/collections/archive/records/r1", a, nil), 403, "forbidden")
	want(t, e.req("DELETE", "/v1/collections/notes/records/r1", a, nil), 204, "")

	// A policy directory that does not parse stops the server from starting.
	if err := os.WriteFile(filepath.Join(dir, "broken.cedar"), []byte("permit ("), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Open(context.Background(), server.Options{DataDir: t.TempDir(), PolicyDir: dir}); err == nil {
		t.Fatal("Open accepted a broken policy directory")
	}
}
