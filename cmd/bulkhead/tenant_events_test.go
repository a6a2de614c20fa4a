package main

import (
	"encoding/json"
	"testing"
)

func TestTenantEvents(t *testing.T) {
	ts := startServer(t)
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))
	mustSucceed(t, ts.cli(t, "tenant", "create", "globex"))

	r := ts.cli(t, "tenant", "events", "acme")
	mustSucceed(t, r)
	if r.stdout != "Tenant acme's events do not carry the record's data: only collection, id, operation, version and time.\n" {
		t.Errorf("default printed %q", r.stdout)
	}
	r = ts.cli(t, "tenant", "events", "acme", "--data=true")
	mustSucceed(t, r)
	if r.stdout != "Tenant acme's events carry the record's data (sealed like the record when encryption is on).\n" {
		t.Errorf("after --data=true: %q", r.stdout)
	}
	r = ts.cli(t, "tenant", "events", "globex", "--json")
	mustSucceed(t, r)
	var v struct {
		ID     string `json:"id"`
		Events struct {
			Data bool `json:"data"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.ID != "globex" || v.Events.Data {
		t.Fatalf("globex --json: %+v %v\n%s", v, err, r.stdout)
	}
	r = ts.cli(t, "tenant", "events", "acme", "--data=false", "--json")
	mustSucceed(t, r)
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.ID != "acme" || v.Events.Data {
		t.Fatalf("acme --data=false --json: %+v %v\n%s", v, err, r.stdout)
	}

	mustFail(t, ts.cli(t, "tenant", "events", "acme", "--data=maybe"), 2, "--data")
	mustFail(t, ts.cli(t, "tenant", "events", "nobody", "--data=true"), 1, "tenant_not_found")
	mustFail(t, ts.cli(t, "tenant", "events"), 2, "ID")
}

func TestServeRefusesNegativeEventBounds(t *testing.T) {
	for _, flag := range []string{"--events-max-age=-1h", "--events-max-count=-1", "--events-trim-interval=-1s"} {
		r := runCLI(t, nil, "--data-dir", t.TempDir(), "serve", flag)
		mustFail(t, r, 2, "must not be negative")
	}
}
