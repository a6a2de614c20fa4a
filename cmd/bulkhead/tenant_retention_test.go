package main

import (
	"encoding/json"
	"testing"
)

func TestTenantRetention(t *testing.T) {
	ts := startServer(t)
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))

	r := ts.cli(t, "tenant", "retention", "acme")
	mustSucceed(t, r)
	if r.stdout != "Tenant acme has no retention rules: its records are kept until deleted.\n" {
		t.Errorf("no rules printed %q", r.stdout)
	}

	r = ts.cli(t, "tenant", "retention", "acme", "--set", "events=720h", "--set", "tmp = 90m")
	mustSucceed(t, r)
	rows := tableRows(r.stdout)
	if len(rows) != 3 || rows[0][0] != "COLLECTION" || rows[1][0] != "events" || rows[1][1] != "720h0m0s" || rows[2][0] != "tmp" || rows[2][1] != "1h30m0s" {
		t.Fatalf("table after --set:\n%s", r.stdout)
	}

	// --unset removes one rule; the others stay.
	r = ts.cli(t, "tenant", "retention", "acme", "--unset", "tmp", "--json")
	mustSucceed(t, r)
	var v struct {
		Retention map[string]string `json:"retention"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || len(v.Retention) != 1 || v.Retention["events"] != "720h0m0s" {
		t.Fatalf("--json after --unset: %+v %v\n%s", v, err, r.stdout)
	}

	// Mistakes: the form here, the values at the server; nothing changes.
	mustFail(t, ts.cli(t, "tenant", "retention", "acme", "--set", "events"), 2, "COLLECTION=DURATION")
	mustFail(t, ts.cli(t, "tenant", "retention", "acme", "--set", "a=1h", "--unset", "a"), 2, "twice")
	mustFail(t, ts.cli(t, "tenant", "retention", "acme", "--set", "events=1 day"), 1, "invalid_retention")
	mustFail(t, ts.cli(t, "tenant", "retention", "acme", "--set", "Bad!=1h"), 1, "invalid_retention")
	mustFail(t, ts.cli(t, "tenant", "retention", "nobody", "--set", "a=1h"), 1, "tenant_not_found")
	r = ts.cli(t, "tenant", "retention", "acme")
	mustSucceed(t, r)
	if rows := tableRows(r.stdout); len(rows) != 2 || rows[1][0] != "events" {
		t.Fatalf("refused changes changed the rules:\n%s", r.stdout)
	}
}

func TestServeRefusesANegativeRetentionInterval(t *testing.T) {
	r := runCLI(t, nil, "--data-dir", t.TempDir(), "serve", "--retention-interval", "-1s")
	mustFail(t, r, 2, "--retention-interval must not be negative")
}
