package catalog_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TestIncarnation: a tenant's incarnation begins when its id is created,
// and a credential issued before that speaks for no one, on SQLite and
// PostgreSQL.
func TestIncarnation(t *testing.T) { forEachEngine(t, testIncarnation) }

func testIncarnation(t *testing.T, f *fixture) {
	ctx := context.Background()
	var now atomic.Int64
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	now.Store(start.UnixNano())
	c := f.open(t, catalog.Options{Now: func() time.Time { return time.Unix(0, now.Load()) }})
	s := newStorage()
	id := tenant.MustParse("acme")
	create(t, c, s, "acme")

	st, since, err := c.Incarnation(ctx, id)
	if err != nil || st != catalog.Active || !since.Equal(start) {
		t.Fatalf("Incarnation: %s %v %v, want active since %v", st, since, err, start)
	}
	if _, _, err := c.Incarnation(ctx, tenant.MustParse("nobody")); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("Incarnation of an unknown tenant: %v", err)
	}

	_, current, err := c.CreateKey(ctx, id, catalog.RoleAdmin, "")
	if err != nil {
		t.Fatal(err)
	}
	// A key whose creation predates the tenant's (as one left over from
	// an earlier tenant with the id would be).
	now.Store(start.Add(-time.Hour).UnixNano())
	_, stale, err := c.CreateKey(ctx, id, catalog.RoleAdmin, "")
	if err != nil {
		t.Fatal(err)
	}
	now.Store(start.Add(time.Minute).UnixNano())
	if p, err := c.Authenticate(ctx, current); err != nil || p.Tenant != id {
		t.Fatalf("a key of the current incarnation: %+v %v", p, err)
	}
	if p, err := c.Authenticate(ctx, stale); !errors.Is(err, catalog.ErrUnauthenticated) {
		t.Fatalf("a key older than its tenant: %+v %v, want ErrUnauthenticated", p, err)
	}
}
