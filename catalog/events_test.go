package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func TestEventSettings(t *testing.T) { forEachEngine(t, testEventSettings) }

// testEventSettings: a tenant's events carry data only once it is set, for
// that tenant only; EventData follows a change at once (the cache is
// invalidated), another instance's change too on PostgreSQL; the setting
// belongs to the incarnation.
func testEventSettings(t *testing.T, f *fixture) {
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	tick := func() time.Time { return time.Unix(0, now.Add(int64(time.Second))) }
	c := f.open(t, catalog.Options{Now: tick, CacheTTL: time.Hour})
	s := newStorage()
	acme := create(t, c, s, "acme").ID
	globex := create(t, c, s, "globex").ID

	data := func(id tenant.ID) bool {
		t.Helper()
		d, err := c.EventData(ctx, id)
		if err != nil {
			t.Fatalf("EventData(%s): %v", id, err)
		}
		return d
	}
	if data(acme) || data(globex) {
		t.Fatal("a fresh tenant's events carry data")
	}
	if err := c.SetEventSettings(ctx, acme, catalog.EventSettings{Data: true}); err != nil {
		t.Fatal(err)
	}
	if !data(acme) || data(globex) {
		t.Fatalf("after setting acme's: acme %v, globex %v", data(acme), data(globex))
	}
	if es, err := c.EventSettings(ctx, acme); err != nil || !es.Data {
		t.Fatalf("EventSettings(acme) = %+v %v", es, err)
	}
	if _, err := c.EventSettings(ctx, tenant.MustParse("nobody")); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("EventSettings of an unknown tenant: %v", err)
	}
	if err := c.SetEventSettings(ctx, tenant.MustParse("nobody"), catalog.EventSettings{Data: true}); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("SetEventSettings of an unknown tenant: %v", err)
	}
	if _, err := c.EventData(ctx, tenant.MustParse("nobody")); !errors.Is(err, store.ErrUnknownTenant) {
		t.Fatalf("EventData of an unknown tenant: %v", err)
	}

	// Another instance (on SQLite: another Catalog on the file, whose cache
	// is read before and after the change) sees it.
	other := f.open(t, catalog.Options{Now: tick})
	if d, err := other.EventData(ctx, acme); err != nil || !d {
		t.Fatalf("another catalog: %v %v", d, err)
	}

	// Suspended tenants keep it; turning it off works.
	if _, err := c.Suspend(ctx, acme); err != nil {
		t.Fatal(err)
	}
	if !data(acme) {
		t.Fatal("suspension lost the setting")
	}
	if err := c.SetEventSettings(ctx, acme, catalog.EventSettings{}); err != nil || data(acme) {
		t.Fatalf("turned off: %v %v", data(acme), err)
	}
	if err := c.SetEventSettings(ctx, acme, catalog.EventSettings{Data: true}); err != nil {
		t.Fatal(err)
	}

	// A tenant deleted and created again starts with the defaults.
	if err := c.Offboard(ctx, acme, s.drop); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EventData(ctx, acme); !errors.Is(err, store.ErrUnknownTenant) {
		t.Fatalf("EventData of an offboarded tenant: %v", err)
	}
	create(t, c, s, "acme")
	if data(acme) {
		t.Fatal("the new acme inherits the old one's setting")
	}
	// Even a row an earlier incarnation left behind is ignored.
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	f.exec(t, fmt.Sprintf(`INSERT INTO tenant_events (tenant_id, data, set_at) VALUES ('acme', 1, %d)`, old))
	if d, err := f.open(t).EventData(ctx, acme); err != nil || d {
		t.Fatalf("an earlier incarnation's row counts: %v %v", d, err)
	}
	if es, err := c.EventSettings(ctx, acme); err != nil || es.Data {
		t.Fatalf("an earlier incarnation's row counts: %+v %v", es, err)
	}
}

func TestParseEventSettings(t *testing.T) {
	for in, want := range map[string]bool{`{"data": true}`: true, `{"data":false}`: false} {
		if got, err := catalog.ParseEventSettings([]byte(in)); err != nil || got.Data != want {
			t.Errorf("ParseEventSettings(%s) = %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{``, `null`, `{}`, `[]`, `true`, `{"data": "true"}`, `{"data": 1}`, `{"data": null}`,
		`{"data": true, "extra": 1}`, `{"Data": true}`, `{"data": true} {}`, `{"data": tru`} {
		if _, err := catalog.ParseEventSettings([]byte(bad)); !errors.Is(err, catalog.ErrInvalidEventSettings) {
			t.Errorf("ParseEventSettings(%q) = %v, want ErrInvalidEventSettings", bad, err)
		}
	}
}
