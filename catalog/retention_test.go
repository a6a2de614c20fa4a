package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func TestRetentionRules(t *testing.T) { forEachEngine(t, testRetentionRules) }

// testRetentionRules: rules are set, merged and removed per collection,
// listed for active and suspended tenants, refused whole when any part is
// bad, and bound to the tenant's incarnation.
func testRetentionRules(t *testing.T, f *fixture) {
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	tick := func() time.Time { return time.Unix(0, now.Add(int64(time.Second))) }
	c := f.open(t, catalog.Options{Now: tick})
	s := newStorage()
	acme := create(t, c, s, "acme").ID
	globex := create(t, c, s, "globex").ID

	if r, err := c.Retention(ctx, acme); err != nil || len(r) != 0 {
		t.Fatalf("fresh tenant's rules: %v %v", r, err)
	}
	must := func(id tenant.ID, r catalog.Retention) {
		t.Helper()
		if err := c.SetRetention(ctx, id, r); err != nil {
			t.Fatal(err)
		}
	}
	must(acme, catalog.Retention{"events": 720 * time.Hour, "logs": time.Hour})
	must(globex, catalog.Retention{"logs": 24 * time.Hour})
	// A change merges: logs is removed, audit added, events kept.
	must(acme, catalog.Retention{"logs": 0, "audit": time.Minute})
	if r, err := c.Retention(ctx, acme); err != nil || fmt.Sprint(r) != "map[audit:1m0s events:720h0m0s]" {
		t.Fatalf("acme's rules: %v %v", r, err)
	}
	if b, _ := json.Marshal(catalog.Retention{"audit": time.Minute}); string(b) != `{"audit":"1m0s"}` {
		t.Fatalf("JSON form: %s", b)
	}

	// Bad changes are refused whole: nothing changes.
	many := catalog.Retention{}
	for i := range catalog.MaxRetentionRules + 1 {
		many[fmt.Sprintf("c%d", i)] = time.Hour
	}
	for name, bad := range map[string]catalog.Retention{
		"short":      {"events": time.Hour, "logs": 999 * time.Millisecond},
		"negative":   {"logs": -time.Hour},
		"collection": {"events": time.Hour, "Bad-Name": time.Hour},
		"too many":   many,
	} {
		if err := c.SetRetention(ctx, acme, bad); !errors.Is(err, catalog.ErrInvalidRetention) {
			t.Errorf("%s: %v, want ErrInvalidRetention", name, err)
		}
	}
	// More than the bound in the end, over several changes, is refused too.
	half := catalog.Retention{}
	for i := range catalog.MaxRetentionRules - 1 { // and acme's 2: one too many
		half[fmt.Sprintf("c%d", i)] = time.Hour
	}
	if err := c.SetRetention(ctx, acme, half); !errors.Is(err, catalog.ErrInvalidRetention) {
		t.Errorf("a change to %d rules in all: %v", catalog.MaxRetentionRules+1, err)
	}
	if err := c.SetRetention(ctx, tenant.MustParse("nobody"), catalog.Retention{"logs": time.Hour}); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	if r, _ := c.Retention(ctx, acme); fmt.Sprint(r) != "map[audit:1m0s events:720h0m0s]" {
		t.Fatalf("refused changes changed acme's rules: %v", r)
	}

	// The sweep's list: every serving tenant's rules, suspended included.
	if _, err := c.Suspend(ctx, globex); err != nil {
		t.Fatal(err)
	}
	rules, err := c.RetentionRules(ctx)
	if err != nil || fmt.Sprint(rules) != "[{acme audit 1m0s} {acme events 720h0m0s} {globex logs 24h0m0s}]" {
		t.Fatalf("RetentionRules = %v %v", rules, err)
	}

	// A tenant deleted and created again does not inherit its rules.
	if err := c.Offboard(ctx, acme, s.drop); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Retention(ctx, acme); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("offboarded tenant's rules: %v", err)
	}
	create(t, c, s, "acme")
	if r, err := c.Retention(ctx, acme); err != nil || len(r) != 0 {
		t.Fatalf("new acme inherits %v %v", r, err)
	}
	// Even a row an earlier incarnation left behind (a version that did
	// not remove it at offboarding) is ignored, and removed at the next change.
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	f.exec(t, fmt.Sprintf(`INSERT INTO tenant_retention (tenant_id, collection, max_age, set_at) VALUES ('acme', 'stale', %d, %d)`, int64(time.Hour), old))
	if r, _ := c.Retention(ctx, acme); len(r) != 0 {
		t.Fatalf("an earlier incarnation's row counts: %v", r)
	}
	if rules, _ := c.RetentionRules(ctx); fmt.Sprint(rules) != "[{globex logs 24h0m0s}]" {
		t.Fatalf("RetentionRules with a stale row: %v", rules)
	}
	must(acme, catalog.Retention{"fresh": time.Hour})
	if r, _ := c.Retention(ctx, acme); fmt.Sprint(r) != "map[fresh:1h0m0s]" {
		t.Fatalf("after a change: %v", r)
	}
	// The stale row is gone: an old clock setting it "current" finds nothing.
	f.exec(t, `UPDATE tenants SET created_at = 0 WHERE id = 'acme'`)
	if r, _ := c.Retention(ctx, acme); fmt.Sprint(r) != "map[fresh:1h0m0s]" {
		t.Fatalf("the stale row was kept: %v", r)
	}
}

func TestParseRetention(t *testing.T) {
	r, err := catalog.ParseRetention([]byte(`{"events": "720h", "logs": "", "tmp": null, "x": "1s"}`))
	if err != nil || fmt.Sprint(r) != "map[events:720h0m0s logs:0s tmp:0s x:1s]" {
		t.Fatalf("ParseRetention = %v %v", r, err)
	}
	for _, bad := range []string{`null`, `[]`, `"1h"`, `{"events": 3600}`, `{"events": "1 hour"}`, `{"events": "500ms"}`,
		`{"events": "-1h"}`, `{"Events": "1h"}`, `{"": "1h"}`, `{"a": "1h"} {}`, `{"a": {}}`, `{` + strings.Repeat(`"`, 1)} {
		if _, err := catalog.ParseRetention([]byte(bad)); !errors.Is(err, catalog.ErrInvalidRetention) {
			t.Errorf("ParseRetention(%s) = %v, want ErrInvalidRetention", bad, err)
		}
	}
}

func TestRetentionReachesOlderCatalogs(t *testing.T) { forEachEngine(t, testRetentionUpgrade) }

// testRetentionUpgrade: a catalog made before retention rules existed (no
// tenant_retention table) gets the table when it is opened, and its
// tenants can have rules.
func testRetentionUpgrade(t *testing.T, f *fixture) {
	ctx := context.Background()
	c := f.open(t)
	acme := create(t, c, newStorage(), "acme").ID
	c.Close()
	f.exec(t, `DROP TABLE tenant_retention`)
	c = f.open(t)
	if err := c.SetRetention(ctx, acme, catalog.Retention{"logs": time.Hour}); err != nil {
		t.Fatalf("set rules on an upgraded catalog: %v", err)
	}
	if r, err := c.Retention(ctx, acme); err != nil || r["logs"] != time.Hour {
		t.Fatalf("rules on an upgraded catalog: %v %v", r, err)
	}
}
