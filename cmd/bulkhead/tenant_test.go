package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestTenantCreateListShow(t *testing.T) {
	ts := startServer(t)

	r := ts.cli(t, "tenant", "create", "acme")
	mustSucceed(t, r)
	for label, want := range map[string]string{
		"ID": "acme", "Name": "acme", "Tier": "standard", "State": "active",
		"Isolation": "pooled", "Shard": "local",
	} {
		if got := field(r.stdout, label); got != want {
			t.Errorf("create acme printed %s %q, want %q\n%s", label, got, want, r.stdout)
		}
	}

	r = ts.cli(t, "tenant", "create", "globex", "--name", "Globex Corp", "--isolation", "database", "--tier", "enterprise")
	mustSucceed(t, r)
	if got := field(r.stdout, "Isolation"); got != "database" {
		t.Errorf("create globex printed Isolation %q, want database\n%s", got, r.stdout)
	}
	if got := field(r.stdout, "Name"); got != "Globex Corp" {
		t.Errorf("create globex printed Name %q, want %q", got, "Globex Corp")
	}

	t.Run("creating an existing id fails and says what to do", func(t *testing.T) {
		r := ts.cli(t, "tenant", "create", "acme")
		mustFail(t, r, 1, "tenant_exists", "HTTP 409", "`bulkhead tenant show acme`")
		if r.stdout != "" {
			t.Errorf("a failed command printed to stdout: %q", r.stdout)
		}
	})

	t.Run("an invalid id is refused with the rule it breaks", func(t *testing.T) {
		mustFail(t, ts.cli(t, "tenant", "create", "Admin"), 1, "invalid_tenant_id", "HTTP 400")
	})

	t.Run("schema isolation is refused on SQLite", func(t *testing.T) {
		mustFail(t, ts.cli(t, "tenant", "create", "initech", "--isolation", "schema"), 1, "isolation_unsupported")
	})

	t.Run("list prints a table of every tenant", func(t *testing.T) {
		r := ts.cli(t, "tenant", "list")
		mustSucceed(t, r)
		rows := tableRows(r.stdout)
		if len(rows) != 3 {
			t.Fatalf("list printed %d lines, want header + 2:\n%s", len(rows), r.stdout)
		}
		if strings.Join(rows[0], " ") != "ID NAME TIER STATE ISOLATION SHARD CREATED" {
			t.Errorf("header = %q", rows[0])
		}
		if rows[1][0] != "acme" || rows[2][0] != "globex" {
			t.Errorf("rows are not acme, globex by id:\n%s", r.stdout)
		}
		if !strings.Contains(r.stdout, "Globex Corp") || !strings.Contains(r.stdout, "database") {
			t.Errorf("globex's row lacks its name or isolation:\n%s", r.stdout)
		}
	})

	t.Run("list --json prints the API's page", func(t *testing.T) {
		r := ts.cli(t, "tenant", "list", "--json")
		mustSucceed(t, r)
		var p struct {
			Items []struct {
				ID        string `json:"id"`
				Placement struct {
					Mode string `json:"mode"`
				} `json:"placement"`
			} `json:"items"`
			NextCursor *string `json:"next_cursor"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
			t.Fatalf("--json output is not JSON: %v\n%s", err, r.stdout)
		}
		if len(p.Items) != 2 || p.Items[0].ID != "acme" || p.Items[1].Placement.Mode != "database" {
			t.Errorf("--json items = %+v", p.Items)
		}
		if p.NextCursor == nil || *p.NextCursor != "" {
			t.Errorf("next_cursor = %v, want present and empty", p.NextCursor)
		}
	})

	t.Run("list pages with --limit and follows cursors with --all", func(t *testing.T) {
		mustSucceed(t, ts.cli(t, "tenant", "create", "initech"))
		r := ts.cli(t, "tenant", "list", "--limit", "1")
		mustSucceed(t, r)
		if rows := tableRows(r.stdout); len(rows) != 2 || rows[1][0] != "acme" {
			t.Errorf("--limit 1 printed:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, "--all") {
			t.Errorf("a partial list does not say how to see the rest; stderr: %q", r.stderr)
		}

		r = ts.cli(t, "tenant", "list", "--limit", "1", "--all")
		mustSucceed(t, r)
		var ids []string
		for _, row := range tableRows(r.stdout)[1:] {
			ids = append(ids, row[0])
		}
		if strings.Join(ids, ",") != "acme,globex,initech" {
			t.Errorf("--all listed %v, want acme,globex,initech", ids)
		}

		r = ts.cli(t, "tenant", "list", "--limit", "2", "--all", "--json")
		mustSucceed(t, r)
		var p struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || len(p.Items) != 3 {
			t.Errorf("--all --json gave %d items (err %v):\n%s", len(p.Items), err, r.stdout)
		}
	})

	t.Run("show prints placement, state and usage", func(t *testing.T) {
		key := createKey(t, ts, "globex", "writer")
		if code, body := ts.request(t, http.MethodPut, "/v1/collections/invoices/records/inv-1", key, `{"total":12}`); code != http.StatusCreated {
			t.Fatalf("PUT record: %d %s", code, body)
		}
		r := ts.cli(t, "tenant", "show", "globex")
		mustSucceed(t, r)
		for label, want := range map[string]string{
			"ID": "globex", "Tier": "enterprise", "State": "active", "Isolation": "database",
			"Shard": "local", "Collections": "1", "Records": "1",
		} {
			if got := field(r.stdout, label); got != want {
				t.Errorf("show printed %s %q, want %q\n%s", label, got, want, r.stdout)
			}
		}

		r = ts.cli(t, "tenant", "show", "globex", "--json")
		mustSucceed(t, r)
		var tv tenantView
		if err := json.Unmarshal([]byte(r.stdout), &tv); err != nil {
			t.Fatalf("show --json: %v\n%s", err, r.stdout)
		}
		if tv.Usage == nil || tv.Usage.Records != 1 {
			t.Errorf("show --json usage = %+v, want 1 record", tv.Usage)
		}
	})

	t.Run("show of a missing tenant fails with a hint", func(t *testing.T) {
		mustFail(t, ts.cli(t, "tenant", "show", "nobody"), 1, "tenant_not_found", "bulkhead tenant list")
	})
}

func TestTenantSuspendResume(t *testing.T) {
	ts := startServer(t)
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))
	key := createKey(t, ts, "acme", "writer")
	if code, body := ts.request(t, http.MethodGet, "/v1/collections", key, ""); code != http.StatusOK {
		t.Fatalf("GET /v1/collections with an active tenant's key: %d %s", code, body)
	}

	r := ts.cli(t, "tenant", "suspend", "acme")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "acme is suspended") {
		t.Errorf("suspend printed %q", r.stdout)
	}
	if got := field(ts.cli(t, "tenant", "show", "acme").stdout, "State"); got != "suspended" {
		t.Errorf("state after suspend = %q", got)
	}
	code, body := ts.request(t, http.MethodGet, "/v1/collections", key, "")
	if code != http.StatusForbidden || !strings.Contains(body, "tenant_suspended") {
		t.Errorf("a suspended tenant's key got %d %s, want 403 tenant_suspended", code, body)
	}

	r = ts.cli(t, "tenant", "resume", "acme", "--json")
	mustSucceed(t, r)
	var tv tenantView
	if err := json.Unmarshal([]byte(r.stdout), &tv); err != nil || tv.State != "active" {
		t.Errorf("resume --json = %q (err %v), want state active", r.stdout, err)
	}
	if code, body := ts.request(t, http.MethodGet, "/v1/collections", key, ""); code != http.StatusOK {
		t.Errorf("a resumed tenant's key got %d %s, want 200", code, body)
	}
}

func TestTenantDelete(t *testing.T) {
	ts := startServer(t)
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))
	key := createKey(t, ts, "acme", "writer")

	t.Run("without --yes nothing is deleted", func(t *testing.T) {
		r := ts.cli(t, "tenant", "delete", "acme")
		mustFail(t, r, 1, "without --yes", "bulkhead tenant delete acme --yes")
		mustSucceed(t, ts.cli(t, "tenant", "show", "acme"))
	})

	t.Run("BULKHEAD_YES in the environment does not confirm", func(t *testing.T) {
		r := runCLI(t, map[string]string{"BULKHEAD_YES": "true", "BULKHEAD_ADDR": ts.url, "BULKHEAD_TOKEN": ts.token},
			"tenant", "delete", "acme")
		mustFail(t, r, 1, "without --yes")
		mustSucceed(t, ts.cli(t, "tenant", "show", "acme"))
	})

	t.Run("with --yes the tenant and its keys are gone", func(t *testing.T) {
		r := ts.cli(t, "tenant", "delete", "acme", "--yes")
		mustSucceed(t, r)
		if !strings.Contains(r.stdout, "acme deleted") {
			t.Errorf("delete printed %q", r.stdout)
		}
		mustFail(t, ts.cli(t, "tenant", "show", "acme"), 1, "tenant_not_found")
		if code, _ := ts.request(t, http.MethodGet, "/v1/collections", key, ""); code != http.StatusUnauthorized {
			t.Errorf("a deleted tenant's key got %d, want 401", code)
		}
	})
}

// createKey issues a key with the CLI and returns its token.
func createKey(t *testing.T, ts *testServer, tenantID, role string) string {
	t.Helper()
	r := ts.cli(t, "key", "create", tenantID, "--role", role, "--name", "test")
	mustSucceed(t, r)
	token := field(r.stdout, "Token")
	if !strings.HasPrefix(token, "bk_") {
		t.Fatalf("key create printed no token:\n%s", r.stdout)
	}
	return token
}
