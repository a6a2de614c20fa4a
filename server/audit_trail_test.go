package server_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/server"
)

// entryWith returns the last entry of entries whose fields equal every
// field of match, or nil.
func entryWith(entries []map[string]any, match map[string]string) map[string]any {
	var found map[string]any
next:
	for _, en := range entries {
		for k, v := range match {
			if s, _ := en[k].(string); s != v {
				continue next
			}
		}
		found = en
	}
	return found
}

// tenantAudit is what GET /v1/audit shows the holder of token.
func (e *env) tenantAudit(token string) []map[string]any {
	e.t.Helper()
	r := e.req("GET", "/v1/audit?limit=1000", token, nil)
	want(e.t, r, 200, "")
	var out struct{ Items []map[string]any }
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatal(err)
	}
	return out.Items
}

// TestEveryEntryNamesItsResource: tenant.create and the support agents'
// creation and revocation were recorded with an empty resource.
func TestEveryEntryNamesItsResource(t *testing.T) {
	e := newEnv(t)
	e.createTenant("alpha", "pooled")
	r := e.req("POST", "/v1/admin/support-agents", e.op, map[string]string{"name": "sam"})
	want(t, r, 201, "")
	agent := r.json(t)["id"].(string)
	want(t, e.req("DELETE", "/v1/admin/support-agents/"+agent, e.op, nil), 204, "")
	want(t, e.req("POST", "/v1/admin/tenants", e.op, map[string]string{"id": "Bad\u0085Id"}), 400, "invalid_tenant_id")

	ctl := e.auditEntries("_control")
	for _, w := range []map[string]string{
		{"action": "tenant.create", "decision": "allow", "resource": "tenant/alpha"},
		{"action": "support.manage", "decision": "allow", "resource": "support-agents/" + agent},
		{"action": "tenant.create", "decision": "allow:400", "resource": "tenant/Bad?Id"},
	} {
		if entryWith(ctl, w) == nil {
			t.Errorf("no entry %v on the control chain", w)
		}
	}
	for _, en := range ctl {
		if en["resource"] == "" && en["action"] != "tenant.list" {
			t.Errorf("entry without a resource: %v", en)
		}
	}
	if n := len(ctl); entryWith(ctl[n-3:n-1], map[string]string{"action": "support.manage"}) == nil {
		t.Errorf("agent creation and revocation are not both recorded: %v", ctl[n-3:])
	}
}

// TestAJWTUserWithControlCharactersIsAudited: a tenant admin whose sub
// holds U+0085 or U+009B creates an admin key, and the entry is written
// with the names escaped.
func TestAJWTUserWithControlCharactersIsAudited(t *testing.T) {
	e, p, clk := jwtEnv(t, server.Options{})
	for _, sub := range []string{"eve\u0085x", "eve\u009b2J"} {
		c := p.claims("a", "alpha", "admin", clk.now())
		c["sub"] = sub
		tok := p.token(t, "a", c)
		r := e.req("POST", "/v1/keys", tok, `{"role":"admin"}`)
		want(t, r, 201, "")
		en := entryWith(e.auditEntries("alpha"), map[string]string{"action": "key.manage", "decision": "allow"})
		if en == nil || !strings.Contains(en["principal"].(string), "|eve?") || en["request_id"] != r.header.Get("X-Request-ID") {
			t.Fatalf("sub %q: the key's creation is not audited as this request: %v", sub, en)
		}
	}
}

// TestASupportAgentsRefusedWriteIsOnTheTenantsChain: a refused write
// under a live grant went only to the control chain.
func TestASupportAgentsRefusedWriteIsOnTheTenantsChain(t *testing.T) {
	e := newEnv(t)
	admin := e.tenantWithKey("alpha", "pooled")
	r := e.req("POST", "/v1/admin/support-agents", e.op, map[string]string{"name": "sam"})
	want(t, r, 201, "")
	agent, agentTok := r.json(t)["id"].(string), r.json(t)["token"].(string)
	want(t, e.req("POST", "/v1/admin/tenants/alpha/grants", e.op,
		map[string]string{"agent_id": agent, "reason": "TICKET-1", "expires_in": "1h"}), 201, "")
	want(t, e.req("PUT", "/v1/collections/notes/records/n1", agentTok, `{"v":1}`, "Bulkhead-Act-As-Tenant", "alpha"), 403, "forbidden")
	if entryWith(e.tenantAudit(admin), map[string]string{"principal": "support:" + agent,
		"action": "record.write", "decision": "deny:forbidden", "resource": "tenant/alpha/collections/notes"}) == nil {
		t.Fatalf("alpha's audit does not show the refused write: %v", e.tenantAudit(admin))
	}
}

// TestRequestIDsAreTheServers: request_id in entries was the client's
// X-Request-ID.
func TestRequestIDsAreTheServers(t *testing.T) {
	e := newEnv(t)
	admin := e.tenantWithKey("alpha", "pooled")
	r := e.req("POST", "/v1/keys", admin, `{"role":"reader"}`, "X-Request-ID", "chosen-by-the-client")
	want(t, r, 201, "")
	id := r.header.Get("X-Request-ID")
	if id == "chosen-by-the-client" || len(id) != 32 {
		t.Fatalf("X-Request-ID %q, want the server's own", id)
	}
	es := e.tenantAudit(admin)
	if en := es[len(es)-1]; en["action"] != "key.manage" || en["request_id"] != id {
		t.Fatalf("entry %v, want request_id %s", en, id)
	}
	if !strings.Contains(e.logs.String(), `"client_request_id":"chosen-by-the-client"`) {
		t.Error("the client's request id is not in the request log")
	}
}

// TestJunkTokensDoNotGrowTheLogWithoutBound: 300 junk tokens made 300
// entries on the control chain.
func TestJunkTokensDoNotGrowTheLogWithoutBound(t *testing.T) {
	e := newEnv(t)
	before := len(e.auditEntries("_control"))
	for i := range 300 {
		want(t, e.req("GET", "/v1/collections/notes/records/n1", "junk-"+strconv.Itoa(i), nil), 401, "unauthenticated")
	}
	if n := len(e.auditEntries("_control")) - before; n == 0 || n > 10 {
		t.Fatalf("300 junk tokens made %d entries, want a handful", n)
	}
}

// TestARecreatedTenantIsANewTenant: delete a tenant, create the id again
// and trust the same issuer: a JWT minted before the deletion worked again
// (and could mint a permanent admin key), and the new tenant's audit
// showed the deleted tenant's entries.
func TestARecreatedTenantIsANewTenant(t *testing.T) {
	e, p, clk := jwtEnv(t, server.Options{})
	clk.advance(10 * time.Second)
	old := p.token(t, "a", p.claims("a", "alpha", "admin", clk.now()))
	r := e.req("POST", "/v1/keys", old, `{"role":"admin"}`)
	want(t, r, 201, "")
	oldKey, oldKeyID := r.json(t)["token"].(string), r.json(t)["id"].(string)
	oldRequest := r.header.Get("X-Request-ID")
	want(t, e.req("PUT", "/v1/collections/notes/records/n1", oldKey, `{"v":1}`), 201, "")

	clk.advance(5 * time.Second) // the deletion comes later
	want(t, e.req("DELETE", "/v1/admin/tenants/alpha", e.op, nil), 204, "")
	e.createTenant("alpha", "pooled")
	want(t, e.req("PUT", "/v1/admin/tenants/alpha/issuers", e.op,
		[]map[string]any{{"issuer": p.issuer("a"), "audience": "bulkhead-api"}}), 200, "")

	want(t, e.req("GET", "/v1/collections/notes/records/n1", old, nil), 401, "unauthenticated")
	want(t, e.req("POST", "/v1/keys", old, `{"role":"admin"}`), 401, "unauthenticated")
	want(t, e.req("GET", "/v1/collections/notes/records/n1", oldKey, nil), 401, "unauthenticated")

	clk.advance(2 * time.Second)
	fresh := p.token(t, "a", p.claims("a", "alpha", "admin", clk.now()))
	want(t, e.req("GET", "/v1/collections/notes/records/n1", fresh, nil), 404, "not_found")
	shown := e.req("GET", "/v1/audit?limit=1000", fresh, nil)
	want(t, shown, 200, "")
	for _, old := range []string{oldKeyID, oldRequest} {
		if strings.Contains(string(shown.body), old) {
			t.Errorf("the new alpha's audit shows the old alpha's %s: %s", old, shown.body)
		}
	}

	t.Run("a token without iat is refused", func(t *testing.T) {
		c := p.claims("a", "alpha", "admin", clk.now())
		delete(c, "iat")
		want(t, e.on(t).req("GET", "/v1/collections/notes/records/n1", p.token(t, "a", c), nil), 401, "unauthenticated")
	})
	t.Run("operators still see and verify the old incarnation", func(t *testing.T) {
		e := e.on(t)
		all := e.auditEntries("alpha")
		if entryWith(all, map[string]string{"request_id": oldRequest, "action": "key.manage"}) == nil ||
			entryWith(all, map[string]string{"action": "tenant.offboard"}) == nil {
			t.Fatalf("the operators' view of alpha's chain lost the old incarnation: %v", all)
		}
		log, err := audit.OpenSQLite(filepath.Join(e.dir, audit.FileName))
		if err != nil {
			t.Fatal(err)
		}
		defer log.Close()
		if rep, err := log.Verify(context.Background()); err != nil || !rep.OK() {
			t.Fatalf("verify: %+v %v", rep, err)
		}
	})
}
