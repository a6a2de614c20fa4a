package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestAnalystCreateListRevoke(t *testing.T) {
	ts := startServer(t)
	r := ts.cli(t, "analyst", "list")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "No analysts") {
		t.Errorf("analyst list with none:\n%s", r.stdout)
	}
	r = ts.cli(t, "analyst", "create", "ann", "--budget", "2.5")
	mustSucceed(t, r)
	token, id := field(r.stdout, "Token"), field(r.stdout, "ID")
	if !strings.HasPrefix(token, "bka_") || id == "" || field(r.stdout, "Budget") != "2.5" {
		t.Fatalf("analyst create printed:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "not shown again") {
		t.Errorf("analyst create does not warn that the token is shown once; stderr %q", r.stderr)
	}
	// The analyst spends 0.5 of it.
	code, body := ts.request(t, http.MethodPost, "/v1/analytics/query", token, `{"collection":"orders","agg":"count","epsilon":0.5}`)
	if code != http.StatusOK {
		t.Fatalf("query: %d %s", code, body)
	}
	r = ts.cli(t, "analyst", "create", "bob", "--budget", "1", "--json")
	mustSucceed(t, r)
	var bob analystView
	if err := json.Unmarshal([]byte(r.stdout), &bob); err != nil || !strings.HasPrefix(bob.Token, "bka_") {
		t.Fatalf("analyst create --json = %q (err %v)", r.stdout, err)
	}
	mustSucceed(t, ts.cli(t, "analyst", "revoke", bob.ID))

	r = ts.cli(t, "analyst", "list")
	mustSucceed(t, r)
	rows := tableRows(r.stdout)
	if len(rows) != 3 || strings.Join(rows[0], " ") != "ID NAME BUDGET SPENT REMAINING CREATED REVOKED" {
		t.Fatalf("analyst list:\n%s", r.stdout)
	}
	if got := strings.Join(rows[1][:5], " "); got != id+" ann 2.5 0.5 2" || rows[1][6] != "-" || rows[2][6] == "-" {
		t.Errorf("analyst list:\n%s", r.stdout)
	}
	for _, args := range [][]string{{"analyst", "list"}, {"analyst", "list", "--json"}} {
		r := ts.cli(t, args...)
		mustSucceed(t, r)
		if strings.Contains(r.stdout, "bka_") {
			t.Errorf("%v printed a token:\n%s", args, r.stdout)
		}
	}
	mustFail(t, ts.cli(t, "analyst", "create", "cy", "--budget", "lots"), 2, "not a number")
	mustFail(t, ts.cli(t, "analyst", "create", "cy", "--budget", "-1"), 1, "invalid_budget")
	mustFail(t, ts.cli(t, "analyst", "create", "cy"), 1, `"budget" not set`)
	mustFail(t, ts.cli(t, "analyst", "revoke", "nosuchanalyst"), 1, "not_found")
}
