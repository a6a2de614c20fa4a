package catalog_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func TestIssuersSetReplaceAndOffboard(t *testing.T) {
	forEachEngine(t, testIssuersSetReplaceAndOffboard)
}

func testIssuersSetReplaceAndOffboard(t *testing.T, f *fixture) {
	ctx := context.Background()
	c := f.open(t)
	s := newStorage()
	create(t, c, s, "acme")
	create(t, c, s, "globex")
	acme, globex := tenant.MustParse("acme"), tenant.MustParse("globex")

	got, err := c.Issuers(ctx, acme)
	if err != nil || len(got) != 0 {
		t.Fatalf("issuers before any were set: %v, %v", got, err)
	}
	first := []catalog.Issuer{
		{Issuer: "https://login.acme.example", Audience: "bulkhead", RoleMap: map[string]string{"Admins": "admin", "Staff": "reader"}},
		{Issuer: "http://127.0.0.1:8080/realms/acme", Audience: "api", TenantClaim: "org", RoleClaim: "groups",
			JWKSURL: "http://127.0.0.1:8080/certs", Algorithms: []string{"ES256"}},
	}
	if err := c.SetIssuers(ctx, acme, first); err != nil {
		t.Fatal(err)
	}
	got, err = c.Issuers(ctx, acme)
	if err != nil {
		t.Fatal(err)
	}
	want := []catalog.Issuer{
		{Issuer: "https://login.acme.example", Audience: "bulkhead", TenantClaim: "tenant", RoleClaim: "role",
			JWKSURL: "https://login.acme.example/.well-known/jwks.json", RoleMap: map[string]string{"Admins": "admin", "Staff": "reader"},
			Algorithms: []string{"RS256", "ES256", "EdDSA"}},
		{Issuer: "http://127.0.0.1:8080/realms/acme", Audience: "api", TenantClaim: "org", RoleClaim: "groups",
			JWKSURL: "http://127.0.0.1:8080/certs", Algorithms: []string{"ES256"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("issuers:\n got %+v\nwant %+v", got, want)
	}
	// The cached list is not shared with callers.
	got[0].RoleMap["Staff"] = "admin"
	if again, _ := c.Issuers(ctx, acme); again[0].RoleMap["Staff"] != "reader" {
		t.Fatal("a caller's change to the returned list leaked into the cache")
	}
	if other, err := c.Issuers(ctx, globex); err != nil || len(other) != 0 {
		t.Fatalf("globex sees acme's issuers: %v, %v", other, err)
	}

	// Replace the whole list (the cached one must not survive).
	if err := c.SetIssuers(ctx, acme, first[1:]); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Issuers(ctx, acme); len(got) != 1 || got[0].Issuer != first[1].Issuer {
		t.Fatalf("after replace: %+v", got)
	}

	if err := c.SetIssuers(ctx, tenant.MustParse("nobody"), first); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}

	// Offboarding removes the issuers: a tenant re-created with the id trusts nobody.
	if err := c.Offboard(ctx, acme, s.drop); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Issuers(ctx, acme); len(got) != 0 {
		t.Fatalf("issuers survived offboarding: %+v", got)
	}
	create(t, c, s, "acme")
	if got, _ := c.Issuers(ctx, acme); len(got) != 0 {
		t.Fatalf("re-created tenant inherited issuers: %+v", got)
	}
	// A fresh instance (no cache) agrees.
	if got, _ := f.open(t).Issuers(ctx, acme); len(got) != 0 {
		t.Fatalf("issuers survived offboarding in storage: %+v", got)
	}
}

func TestSetIssuersRefusesBadListsAndKeepsTheOld(t *testing.T) {
	forEachEngine(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		c := f.open(t)
		create(t, c, newStorage(), "acme")
		id := tenant.MustParse("acme")
		good := catalog.Issuer{Issuer: "https://idp.example", Audience: "a"}
		if err := c.SetIssuers(ctx, id, []catalog.Issuer{good}); err != nil {
			t.Fatal(err)
		}
		for name, list := range map[string][]catalog.Issuer{
			"duplicate":      {good, good},
			"one bad of two": {{Issuer: "https://other.example", Audience: "a"}, {Issuer: "https://x.example", Audience: "a", Algorithms: []string{"HS256"}}},
			"too many":       make([]catalog.Issuer, catalog.MaxIssuers+1),
		} {
			if err := c.SetIssuers(ctx, id, list); !errors.Is(err, catalog.ErrInvalidIssuer) {
				t.Errorf("%s: got %v, want ErrInvalidIssuer", name, err)
			}
		}
		if got, _ := c.Issuers(ctx, id); len(got) != 1 || got[0].Issuer != good.Issuer {
			t.Fatalf("a refused change altered the list: %+v", got)
		}
		if err := c.SetIssuers(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := c.Issuers(ctx, id); len(got) != 0 {
			t.Fatalf("empty list did not clear: %+v", got)
		}
	})
}

// TestIssuerChangesReachOtherInstances: a second instance caching for an
// hour sees another instance's change through NOTIFY.
func TestIssuerChangesReachOtherInstances(t *testing.T) {
	ctx := context.Background()
	f := newPostgres(t)
	a := f.open(t)
	b := f.open(t, catalog.Options{CacheTTL: time.Hour})
	create(t, a, newStorage(), "acme")
	id := tenant.MustParse("acme")
	if err := a.SetIssuers(ctx, id, []catalog.Issuer{{Issuer: "https://one.example", Audience: "a"}}); err != nil {
		t.Fatal(err)
	}
	within(t, "set issuers", func() bool { l, _ := b.Issuers(ctx, id); return len(l) == 1 }) // b now caches it
	if err := a.SetIssuers(ctx, id, []catalog.Issuer{{Issuer: "https://two.example", Audience: "a"}}); err != nil {
		t.Fatal(err)
	}
	within(t, "replace issuers", func() bool {
		l, _ := b.Issuers(ctx, id)
		return len(l) == 1 && l[0].Issuer == "https://two.example"
	})
}
