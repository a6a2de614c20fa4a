package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
)

func TestRetention(t *testing.T) {
	for _, mode := range []string{"pooled", "database"} {
		t.Run(mode, func(t *testing.T) {
			clk := &clock{}
			testRetention(t, newEnvIn(t, t.TempDir(), server.Options{Now: clk.now, RetentionInterval: -1}), clk, mode)
		})
	}
}

func TestRetentionOnPostgres(t *testing.T) {
	for _, mode := range []string{"pooled", "schema"} {
		t.Run(mode, func(t *testing.T) {
			opts, _ := pgOptions(t)
			clk := &clock{}
			opts.Now, opts.RetentionInterval = clk.now, -1
			testRetention(t, newEnvIn(t, t.TempDir(), opts), clk, mode)
		})
	}
}

// retentionOf returns the tenant's rules as GET /v1/admin/tenants/{id} shows them.
func (e *env) retentionOf(id string) string {
	e.t.Helper()
	r := e.req("GET", "/v1/admin/tenants/"+id, e.op, nil)
	want(e.t, r, 200, "")
	return fmt.Sprint(r.json(e.t)["retention"])
}

func (e *env) put(tok, coll, id string) {
	e.t.Helper()
	want(e.t, e.req("PUT", "/v1/collections/"+coll+"/records/"+id, tok, `{"v":"`+id+`"}`), 201, "")
}

// usage returns the tenant's records and bytes as the control plane shows them.
func (e *env) usage(id string) (records, bytes float64) {
	e.t.Helper()
	r := e.req("GET", "/v1/admin/tenants/"+id, e.op, nil)
	want(e.t, r, 200, "")
	u := r.json(e.t)["usage"].(map[string]any)
	return u["records"].(float64), u["bytes"].(float64)
}

func testRetention(t *testing.T, e *env, clk *clock, mode string) {
	acme := e.tenantWithKey("acme", mode)
	globex := e.tenantWithKey("globex", mode)
	path := "/v1/admin/tenants/acme"

	// Bad bodies: 400 invalid_retention, nothing changed (not the tier
	// sent with them either).
	want(t, e.req("PATCH", path, e.op, `{"retention": {"logs": "2h"}}`), 200, "")
	for _, body := range []string{
		`{"retention": {"logs": "1 hour"}}`,
		`{"retention": {"logs": "500ms"}}`,
		`{"retention": {"logs": "-1h"}}`,
		`{"retention": {"Logs!": "1h"}}`,
		`{"retention": {"logs": 3600}}`,
		`{"retention": ["logs"]}`,
		`{"retention": null}`,
		`{"tier": "enterprise", "retention": {"events": "1h", "logs": "1ms"}}`,
	} {
		want(t, e.req("PATCH", path, e.op, body), 400, "invalid_retention")
	}
	if got := e.retentionOf("acme"); got != "map[logs:2h0m0s]" {
		t.Fatalf("rules after refused changes: %s", got)
	}
	if tier := e.req("GET", path, e.op, nil).json(t)["tier"]; tier != "standard" {
		t.Fatalf("a refused change moved the tier to %v", tier)
	}
	want(t, e.req("PATCH", "/v1/admin/tenants/nobody", e.op, `{"retention": {"logs": "1h"}}`), 404, "tenant_not_found")

	// Set, merge, remove.
	r := e.req("PATCH", path, e.op, `{"retention": {"logs": "1h", "events": "24h", "tmp": "10m"}}`)
	want(t, r, 200, "")
	if got := fmt.Sprint(r.json(t)["retention"]); got != "map[events:24h0m0s logs:1h0m0s tmp:10m0s]" {
		t.Fatalf("PATCH answered rules %s", got)
	}
	want(t, e.req("PATCH", path, e.op, `{"retention": {"events": null, "tmp": ""}}`), 200, "")
	if got := e.retentionOf("acme"); got != "map[logs:1h0m0s]" {
		t.Fatalf("rules after removing two: %s", got)
	}

	// Records: acme's old logs go, its new log and its notes stay, and
	// globex's logs of the same ids and age stay (it has no rule).
	e.put(acme, "logs", "a")
	e.put(acme, "logs", "b")
	e.put(acme, "notes", "n")
	e.put(globex, "logs", "a")
	e.put(globex, "logs", "b")
	clk.advance(2 * time.Hour)
	e.put(acme, "logs", "c")
	recs, bytes := e.usage("acme")
	gRecs, gBytes := e.usage("globex")

	got, err := e.srv.SweepRetention(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Tenant.String() != "acme" || got[0].Records != 2 {
		t.Fatalf("sweep = %+v, want acme's 2 old logs", got)
	}
	if n := e.count(acme, "logs"); n != 1 {
		t.Fatalf("acme has %d logs, want 1", n)
	}
	want(t, e.req("GET", "/v1/collections/logs/records/c", acme, nil), 200, "")
	want(t, e.req("GET", "/v1/collections/logs/records/a", acme, nil), 404, "")
	if n := e.count(acme, "notes"); n != 1 {
		t.Fatalf("acme's notes (no rule): %d", n)
	}
	if n := e.count(globex, "logs"); n != 2 {
		t.Fatalf("globex's logs: %d, want 2", n)
	}
	if r2, b2 := e.usage("acme"); r2 != recs-2 || b2 != bytes-float64(got[0].Bytes) {
		t.Fatalf("acme's usage %v/%v after purging %+v, was %v/%v", r2, b2, got[0], recs, bytes)
	}
	if r2, b2 := e.usage("globex"); r2 != gRecs || b2 != gBytes {
		t.Fatalf("globex's usage moved")
	}
	if !hasEntry(e.auditEntries("acme"), map[string]string{"action": "retention.purge", "decision": "purged:2", "resource": "tenant/acme", "principal": "system:retention"}) {
		t.Fatalf("acme's chain lacks the purge: %v", e.auditEntries("acme"))
	}
	if hasEntry(e.auditEntries("globex"), map[string]string{"action": "retention.purge"}) {
		t.Fatal("globex's chain has a purge")
	}
	m := string(e.req("GET", "/metrics", "", nil).body)
	for _, line := range []string{`bulkhead_retention_purged_records_total{tenant="acme"} 2`, `bulkhead_retention_runs_total{result="ok"} 1`} {
		if !strings.Contains(m, line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}

	// Deleted and created again, acme starts without rules.
	want(t, e.req("DELETE", path, e.op, nil), 204, "")
	acme = e.tenantWithKey("acme", mode)
	if got := e.retentionOf("acme"); got != "<nil>" {
		t.Fatalf("the new acme has rules %s", got)
	}
	e.put(acme, "logs", "a")
	clk.advance(2 * time.Hour)
	if got, err := e.srv.SweepRetention(context.Background()); err != nil || len(got) != 0 {
		t.Fatalf("sweep of the new acme: %+v %v", got, err)
	}
	if n := e.count(acme, "logs"); n != 1 {
		t.Fatalf("the new acme's logs: %d", n)
	}
}
