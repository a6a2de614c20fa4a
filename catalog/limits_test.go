package catalog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func TestTenantLimits(t *testing.T) { forEachEngine(t, testTenantLimits) }

func testTenantLimits(t *testing.T, f *fixture) {
	ctx := context.Background()
	c := f.open(t)
	s := newStorage()
	acme := create(t, c, s, "acme")

	tier, o, err := c.TenantLimits(ctx, acme.ID)
	if err != nil || tier != catalog.DefaultTier || !o.IsZero() {
		t.Fatalf("fresh tenant limits = %q %+v %v", tier, o, err)
	}
	rps, recs := 7.5, int64(42)
	if err := c.SetLimits(ctx, acme.ID, limits.Overrides{RequestsPerSecond: &rps, MaxRecords: &recs}); err != nil {
		t.Fatal(err)
	}
	// The cached path sees the change at once.
	if _, o, err = c.TenantLimits(ctx, acme.ID); err != nil || o.RequestsPerSecond == nil || *o.RequestsPerSecond != 7.5 || *o.MaxRecords != 42 || o.Burst != nil {
		t.Fatalf("after set: %+v %v", o, err)
	}
	if o, err = c.Limits(ctx, acme.ID); err != nil || *o.MaxRecords != 42 {
		t.Fatalf("Limits = %+v %v", o, err)
	}
	bad := -1
	if err := c.SetLimits(ctx, acme.ID, limits.Overrides{Burst: &bad}); !errors.Is(err, limits.ErrInvalid) {
		t.Fatalf("invalid burst: %v", err)
	}
	if err := c.SetLimits(ctx, tenant.MustParse("nobody"), limits.Overrides{}); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	if err := c.SetLimits(ctx, acme.ID, limits.Overrides{}); err != nil {
		t.Fatal(err)
	}
	if _, o, _ = c.TenantLimits(ctx, acme.ID); !o.IsZero() {
		t.Fatalf("after clear: %+v", o)
	}
	// Offboarding removes the overrides: a new tenant with the id starts clean.
	if err := c.SetLimits(ctx, acme.ID, limits.Overrides{MaxRecords: &recs}); err != nil {
		t.Fatal(err)
	}
	if err := c.Offboard(ctx, acme.ID, s.drop); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.TenantLimits(ctx, acme.ID); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("offboarded: %v", err)
	}
	create(t, c, s, "acme")
	if _, o, _ = c.TenantLimits(ctx, acme.ID); !o.IsZero() {
		t.Fatalf("recreated tenant inherited limits %+v", o)
	}
}

// TestLimitsReachOtherInstances: an override set on one instance is seen
// by another that caches for an hour.
func TestLimitsReachOtherInstances(t *testing.T) {
	ctx := context.Background()
	f := newPostgres(t)
	a := f.open(t)
	b := f.open(t, catalog.Options{CacheTTL: time.Hour})
	create(t, a, newStorage(), "acme")
	id := tenant.MustParse("acme")
	if _, o, err := b.TenantLimits(ctx, id); err != nil || !o.IsZero() { // warm B's cache
		t.Fatal(o, err)
	}
	n := int64(5)
	if err := a.SetLimits(ctx, id, limits.Overrides{MaxRecords: &n}); err != nil {
		t.Fatal(err)
	}
	within(t, "set limits", func() bool {
		_, o, err := b.TenantLimits(ctx, id)
		return err == nil && o.MaxRecords != nil && *o.MaxRecords == 5
	})
}

func TestTierAndLimitsChangeTogether(t *testing.T) { forEachEngine(t, testTierAndLimitsTogether) }

// testTierAndLimitsTogether: one UpdateTenant changes the tier and the
// overrides together; with invalid overrides it changes neither.
func testTierAndLimitsTogether(t *testing.T, f *fixture) {
	ctx := context.Background()
	c := f.open(t)
	acme := create(t, c, newStorage(), "acme")
	ent, rps := limits.Enterprise, 9.0
	if _, err := c.UpdateTenant(ctx, acme.ID, catalog.TenantUpdate{Tier: &ent, Limits: &limits.Overrides{RequestsPerSecond: &rps}}); err != nil {
		t.Fatal(err)
	}
	tier, o, err := c.TenantLimits(ctx, acme.ID)
	if err != nil || tier != ent || o.RequestsPerSecond == nil || *o.RequestsPerSecond != 9 {
		t.Fatalf("after the update: %q %+v %v", tier, o, err)
	}
	free, bad := limits.Free, -1
	if _, err := c.UpdateTenant(ctx, acme.ID, catalog.TenantUpdate{Tier: &free, Limits: &limits.Overrides{Burst: &bad}}); !errors.Is(err, limits.ErrInvalid) {
		t.Fatalf("invalid overrides with a tier: %v", err)
	}
	tier, o, err = c.TenantLimits(ctx, acme.ID)
	if err != nil || tier != ent || o.Burst != nil || *o.RequestsPerSecond != 9 {
		t.Fatalf("a refused update changed something: %q %+v %v", tier, o, err)
	}
	// Limits alone still update (and announce) the tenant.
	if err := c.SetLimits(ctx, acme.ID, limits.Overrides{}); err != nil {
		t.Fatal(err)
	}
	if tier, o, err = c.TenantLimits(ctx, acme.ID); err != nil || tier != ent || !o.IsZero() {
		t.Fatalf("after clearing: %q %+v %v", tier, o, err)
	}
}
