package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAgentCreateListRevoke(t *testing.T) {
	ts := startServer(t)
	r := ts.cli(t, "agent", "list")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "No support agents") {
		t.Errorf("agent list with none:\n%s", r.stdout)
	}

	r = ts.cli(t, "agent", "create", "alice")
	mustSucceed(t, r)
	token, id := field(r.stdout, "Token"), field(r.stdout, "ID")
	if !strings.HasPrefix(token, "bks_") || id == "" || field(r.stdout, "Name") != "alice" {
		t.Fatalf("agent create printed:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "not shown again") {
		t.Errorf("agent create does not warn that the token is shown once; stderr %q", r.stderr)
	}
	r = ts.cli(t, "agent", "create", "bob", "--json")
	mustSucceed(t, r)
	var bob agentView
	if err := json.Unmarshal([]byte(r.stdout), &bob); err != nil || !strings.HasPrefix(bob.Token, "bks_") {
		t.Fatalf("agent create --json = %q (err %v)", r.stdout, err)
	}

	mustSucceed(t, ts.cli(t, "agent", "revoke", bob.ID))
	r = ts.cli(t, "agent", "list")
	mustSucceed(t, r)
	rows := tableRows(r.stdout)
	if len(rows) != 3 || strings.Join(rows[0], " ") != "ID NAME CREATED REVOKED" {
		t.Fatalf("agent list:\n%s", r.stdout)
	}
	if rows[1][0] != id || rows[1][1] != "alice" || rows[1][3] != "-" || rows[2][0] != bob.ID || rows[2][3] == "-" {
		t.Errorf("agent list:\n%s", r.stdout)
	}
	for _, args := range [][]string{{"agent", "list"}, {"agent", "list", "--json"}} {
		r := ts.cli(t, args...)
		mustSucceed(t, r)
		if strings.Contains(r.stdout, token) || strings.Contains(r.stdout, bob.Token) || strings.Contains(r.stdout, "bks_") {
			t.Errorf("%v printed a token:\n%s", args, r.stdout)
		}
	}
	mustFail(t, ts.cli(t, "agent", "revoke", "nosuchagent"), 1, "not_found")
	mustFail(t, ts.cli(t, "agent", "create"), 2, "needs NAME")
}

func TestGrantCreateListRevoke(t *testing.T) {
	ts := startServer(t)
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))
	key := createKey(t, ts, "acme", "writer")
	if code, body := ts.request(t, http.MethodPut, "/v1/collections/notes/records/n1", key, `{"x":1}`); code != http.StatusCreated {
		t.Fatalf("write: %d %s", code, body)
	}
	r := ts.cli(t, "agent", "create", "alice")
	mustSucceed(t, r)
	agentToken, agentID := field(r.stdout, "Token"), field(r.stdout, "ID")
	read := func() int {
		code, _ := ts.request(t, http.MethodGet, "/v1/collections/notes/records/n1", agentToken, "", "Bulkhead-Act-As-Tenant", "acme")
		return code
	}
	if code := read(); code != http.StatusForbidden {
		t.Fatalf("the agent reads without a grant: %d", code)
	}

	r = ts.cli(t, "grant", "list", "acme")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "no support grants") {
		t.Errorf("grant list with none:\n%s", r.stdout)
	}
	r = ts.cli(t, "grant", "create", "acme", "--agent", agentID, "--reason", "ticket-42", "--expires-in", "1h")
	mustSucceed(t, r)
	grantID := field(r.stdout, "ID")
	if grantID == "" || field(r.stdout, "Agent") != agentID || field(r.stdout, "Reason") != "ticket-42" || field(r.stdout, "Expires") == "-" {
		t.Fatalf("grant create printed:\n%s", r.stdout)
	}
	if code := read(); code != http.StatusOK {
		t.Fatalf("the agent cannot read under the grant: %d", code)
	}
	r = ts.cli(t, "grant", "list", "acme")
	mustSucceed(t, r)
	rows := tableRows(r.stdout)
	if len(rows) != 2 || rows[1][0] != grantID || rows[1][1] != agentID || rows[1][2] != "ticket-42" || rows[1][5] != "-" {
		t.Fatalf("grant list:\n%s", r.stdout)
	}
	r = ts.cli(t, "grant", "list", "acme", "--json")
	mustSucceed(t, r)
	var p struct{ Items []grantView }
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || len(p.Items) != 1 || p.Items[0].ID != grantID {
		t.Fatalf("grant list --json = %q (err %v)", r.stdout, err)
	}

	mustSucceed(t, ts.cli(t, "grant", "revoke", "acme", grantID))
	if code := read(); code != http.StatusForbidden {
		t.Fatalf("the agent reads after the grant's revocation: %d", code)
	}
	r = ts.cli(t, "grant", "list", "acme")
	mustSucceed(t, r)
	if rows := tableRows(r.stdout); len(rows) != 2 || rows[1][5] == "-" {
		t.Errorf("grant list after revoke:\n%s", r.stdout)
	}

	t.Run("mistakes are refused", func(t *testing.T) {
		mustFail(t, ts.cli(t, "grant", "create", "acme", "--agent", agentID, "--reason", "x"), 1, "expires-in")
		mustFail(t, ts.cli(t, "grant", "create", "acme", "--agent", agentID, "--reason", "x",
			"--expires-in", "1h", "--expires-at", "2030-01-01T00:00:00Z"), 1, "expires")
		mustFail(t, ts.cli(t, "grant", "create", "acme", "--agent", agentID, "--reason", "x", "--expires-in", "48h"), 1, "invalid_grant")
		mustFail(t, ts.cli(t, "grant", "revoke", "acme", "nosuchgrant"), 1, "not_found")
	})
}

func TestIssuerGetAndSetFromAFile(t *testing.T) {
	ts := startServer(t)
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))
	r := ts.cli(t, "issuer", "get", "acme")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "trusts no identity provider") {
		t.Errorf("issuer get with none:\n%s", r.stdout)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "issuers.json")
	writeFile(t, file, `[{"issuer": "http://127.0.0.1:9/idp", "audience": "bulkhead-api", "tenant_claim": "org"}]`)
	r = ts.cli(t, "issuer", "set", "acme", "--file", file)
	mustSucceed(t, r)
	rows := tableRows(r.stdout)
	if len(rows) != 2 || rows[1][0] != "http://127.0.0.1:9/idp" || rows[1][1] != "bulkhead-api" || rows[1][2] != "org" {
		t.Fatalf("issuer set printed:\n%s", r.stdout)
	}

	// What get --json prints is a file set takes back.
	r = ts.cli(t, "issuer", "get", "acme", "--json")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, `"tenant_claim": "org"`) {
		t.Fatalf("issuer get --json:\n%s", r.stdout)
	}
	writeFile(t, file, r.stdout)
	r2 := ts.cli(t, "issuer", "set", "acme", "--file", file, "--json")
	mustSucceed(t, r2)
	if r2.stdout != r.stdout {
		t.Errorf("set from get's output changed the issuers:\n%s\nthen\n%s", r.stdout, r2.stdout)
	}

	writeFile(t, file, `[]`)
	mustSucceed(t, ts.cli(t, "issuer", "set", "acme", "--file", file))
	if r := ts.cli(t, "issuer", "get", "acme"); !strings.Contains(r.stdout, "trusts no identity provider") {
		t.Errorf("issuers after setting []:\n%s", r.stdout)
	}

	t.Run("mistakes are refused", func(t *testing.T) {
		writeFile(t, file, `{"issuer": "http://127.0.0.1:9/idp"}`)
		mustFail(t, ts.cli(t, "issuer", "set", "acme", "--file", file), 1, "JSON array")
		writeFile(t, file, `[{"issuer": "http://idp.example.com", "audience": "a"}]`)
		mustFail(t, ts.cli(t, "issuer", "set", "acme", "--file", file), 1, "invalid_issuer")
		mustFail(t, ts.cli(t, "issuer", "set", "acme", "--file", filepath.Join(dir, "missing.json")), 1, "read issuers file")
		mustFail(t, ts.cli(t, "issuer", "set", "acme"), 1, `"file"`)
		mustFail(t, ts.cli(t, "issuer", "get", "nosuchtenant"), 1, "not_found")
	})
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
