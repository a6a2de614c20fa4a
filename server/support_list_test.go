package server_test

import (
	"strings"
	"testing"
)

func TestOperatorListsSupportAgentsWithoutSecrets(t *testing.T) {
	testListAgents(t, newEnv(t))
}

func TestOperatorListsSupportAgentsOnPostgres(t *testing.T) {
	opts, _ := pgOptions(t)
	testListAgents(t, newEnvIn(t, t.TempDir(), opts))
}

func testListAgents(t *testing.T, e *env) {
	r := e.req("GET", "/v1/admin/support-agents", e.op, nil)
	want(t, r, 200, "")
	if !strings.Contains(string(r.body), `"items":[]`) {
		t.Fatalf("no agents yet: %s", r.body)
	}
	var tokens []string
	var ids []string
	for _, name := range []string{"alice", "bob"} {
		r := e.req("POST", "/v1/admin/support-agents", e.op, map[string]string{"name": name})
		want(t, r, 201, "")
		tokens = append(tokens, r.json(t)["token"].(string))
		ids = append(ids, r.json(t)["id"].(string))
	}
	want(t, e.req("DELETE", "/v1/admin/support-agents/"+ids[1], e.op, nil), 204, "")

	r = e.req("GET", "/v1/admin/support-agents", e.op, nil)
	want(t, r, 200, "")
	items := r.json(t)["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("want 2 agents: %s", r.body)
	}
	a, b := items[0].(map[string]any), items[1].(map[string]any)
	if a["id"] != ids[0] || a["name"] != "alice" || a["revoked_at"] != nil || a["created_at"] == nil {
		t.Errorf("first agent: %v", a)
	}
	if b["id"] != ids[1] || b["revoked_at"] == nil {
		t.Errorf("the revoked agent: %v", b)
	}
	for _, tok := range tokens {
		// The secret is the token's last 43 characters (32 random bytes,
		// base64url, which may itself hold '_': splitting at the last '_'
		// could leave a suffix short enough to occur in the body by chance).
		secret := tok[len(tok)-43:]
		if strings.Contains(string(r.body), secret) {
			t.Fatal("the list holds an agent's secret")
		}
	}
	for _, k := range []string{"token", "secret", "hash"} {
		if strings.Contains(string(r.body), `"`+k) {
			t.Errorf("the list has a %q field: %s", k, r.body)
		}
	}

	// Operators only: a tenant admin and a support agent are refused.
	admin := e.tenantWithKey("acme", "pooled")
	want(t, e.req("GET", "/v1/admin/support-agents", admin, nil), 403, "")
	if r := e.req("GET", "/v1/admin/support-agents", tokens[0], nil); r.status != 403 && r.status != 401 {
		t.Errorf("a support agent listing agents: %d %s", r.status, r.body)
	}
	want(t, e.req("GET", "/v1/admin/support-agents", "", nil), 401, "")
}
