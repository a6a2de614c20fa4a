package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestKeyCreateListRevoke(t *testing.T) {
	ts := startServer(t)
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))
	mustSucceed(t, ts.cli(t, "tenant", "create", "globex"))

	r := ts.cli(t, "key", "create", "acme", "--role", "writer", "--name", "ci")
	mustSucceed(t, r)
	token, keyID := field(r.stdout, "Token"), field(r.stdout, "ID")
	if !strings.HasPrefix(token, "bk_") || keyID == "" {
		t.Fatalf("key create printed token %q, id %q:\n%s", token, keyID, r.stdout)
	}
	if field(r.stdout, "Role") != "writer" || field(r.stdout, "Tenant") != "acme" || field(r.stdout, "Name") != "ci" {
		t.Errorf("key create printed:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "not shown again") {
		t.Errorf("key create does not warn that the token is shown once; stderr %q", r.stderr)
	}
	if code, body := ts.request(t, http.MethodPut, "/v1/collections/notes/records/n1", token, `{"x":1}`); code != http.StatusCreated {
		t.Fatalf("the new key cannot write: %d %s", code, body)
	}

	t.Run("--json includes the token once", func(t *testing.T) {
		r := ts.cli(t, "key", "create", "acme", "--role", "reader", "--json")
		mustSucceed(t, r)
		var k keyView
		if err := json.Unmarshal([]byte(r.stdout), &k); err != nil || !strings.HasPrefix(k.Token, "bk_") || k.Role != "reader" {
			t.Errorf("key create --json = %q (err %v)", r.stdout, err)
		}
	})

	t.Run("a role is required", func(t *testing.T) {
		mustFail(t, ts.cli(t, "key", "create", "acme"), 1, `"role"`)
	})

	t.Run("an unknown role is refused by the server", func(t *testing.T) {
		mustFail(t, ts.cli(t, "key", "create", "acme", "--role", "root"), 1, "invalid_role")
	})

	t.Run("list shows the keys but never a token", func(t *testing.T) {
		r := ts.cli(t, "key", "list", "acme")
		mustSucceed(t, r)
		if !strings.Contains(r.stdout, keyID) || !strings.Contains(r.stdout, "writer") {
			t.Errorf("key list lacks key %s:\n%s", keyID, r.stdout)
		}
		if strings.Contains(r.stdout, "bk_") && strings.Contains(r.stdout, token) {
			t.Errorf("key list printed a token:\n%s", r.stdout)
		}
		r = ts.cli(t, "key", "list", "acme", "--json")
		mustSucceed(t, r)
		if strings.Contains(r.stdout, token) || strings.Contains(r.stdout, `"token"`) {
			t.Errorf("key list --json printed a token:\n%s", r.stdout)
		}
	})

	t.Run("another tenant's key id cannot be revoked through this tenant", func(t *testing.T) {
		mustFail(t, ts.cli(t, "key", "revoke", "globex", keyID), 1, "key_not_found", "`bulkhead key list globex`")
		if code, _ := ts.request(t, http.MethodGet, "/v1/collections", token, ""); code != http.StatusOK {
			t.Errorf("acme's key stopped working after a refused revoke: %d", code)
		}
	})

	t.Run("revoke takes effect on the next request", func(t *testing.T) {
		r := ts.cli(t, "key", "revoke", "acme", keyID)
		mustSucceed(t, r)
		if !strings.Contains(r.stdout, "revoked") {
			t.Errorf("revoke printed %q", r.stdout)
		}
		if code, body := ts.request(t, http.MethodGet, "/v1/collections", token, ""); code != http.StatusUnauthorized {
			t.Errorf("a revoked key got %d %s, want 401", code, body)
		}
	})

	t.Run("a tenant key is not an operator token", func(t *testing.T) {
		other := createKey(t, ts, "globex", "admin")
		r := runCLI(t, nil, "tenant", "list", "--addr", ts.url, "--token", other)
		mustFail(t, r, 1, "HTTP 403", "operator.token")
	})
}
