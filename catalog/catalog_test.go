package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// storage records which tenants have storage, standing in for store.Router's
// Provision and Drop (the catalog only calls them).
type storage struct {
	mu      sync.Mutex
	have    map[tenant.ID]store.Placement
	failFor map[tenant.ID]error
}

func newStorage() *storage {
	return &storage{have: map[tenant.ID]store.Placement{}, failFor: map[tenant.ID]error{}}
}

func (s *storage) provision(_ context.Context, id tenant.ID, p store.Placement) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failFor[id]; err != nil {
		return err
	}
	s.have[id] = p
	return nil
}

func (s *storage) drop(_ context.Context, id tenant.ID, _ store.Placement) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failFor[id]; err != nil {
		return err
	}
	delete(s.have, id)
	return nil
}

var pooled = store.Placement{Mode: store.Pooled, Shard: "local"}

func create(t *testing.T, c *catalog.Catalog, s *storage, id string) catalog.Tenant {
	t.Helper()
	tn, err := c.CreateTenant(context.Background(), catalog.Tenant{ID: tenant.MustParse(id), Placement: pooled}, s.provision)
	if err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	return tn
}

func TestTenantLifecycle(t *testing.T) { forEachEngine(t, testTenantLifecycle) }

func testTenantLifecycle(t *testing.T, f *fixture) {
	ctx := context.Background()
	c := f.open(t)
	s := newStorage()
	acme := create(t, c, s, "acme")
	if acme.State != catalog.Active || acme.Name != "acme" || acme.Tier != catalog.DefaultTier {
		t.Fatalf("created tenant = %+v", acme)
	}
	if _, ok := s.have[acme.ID]; !ok {
		t.Fatal("provision was not called")
	}
	if _, err := c.CreateTenant(ctx, catalog.Tenant{ID: acme.ID, Placement: pooled}, s.provision); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	p, err := c.Placement(ctx, acme.ID)
	if err != nil || p != pooled {
		t.Fatalf("placement = %v, %v", p, err)
	}

	name, tier := "Acme Corp", "enterprise"
	got, err := c.UpdateTenant(ctx, acme.ID, catalog.TenantUpdate{Name: &name, Tier: &tier})
	if err != nil || got.Name != name || got.Tier != tier {
		t.Fatalf("update = %+v, %v", got, err)
	}
	bad := "platinum"
	if _, err := c.UpdateTenant(ctx, acme.ID, catalog.TenantUpdate{Tier: &bad}); !errors.Is(err, catalog.ErrInvalidTier) {
		t.Fatalf("bad tier: %v", err)
	}

	if got, err := c.Suspend(ctx, acme.ID); err != nil || got.State != catalog.Suspended {
		t.Fatalf("suspend = %+v, %v", got, err)
	}
	if _, err := c.Placement(ctx, acme.ID); err != nil {
		t.Fatalf("a suspended tenant keeps its placement: %v", err)
	}
	if got, err := c.Resume(ctx, acme.ID); err != nil || got.State != catalog.Active {
		t.Fatalf("resume = %+v, %v", got, err)
	}

	if err := c.Offboard(ctx, acme.ID, s.drop); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.have[acme.ID]; ok {
		t.Fatal("drop was not called")
	}
	if _, err := c.Tenant(ctx, acme.ID); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("tenant after offboard: %v", err)
	}
	if _, err := c.Placement(ctx, acme.ID); !errors.Is(err, store.ErrUnknownTenant) {
		t.Fatalf("placement after offboard: %v", err)
	}
	if err := c.Offboard(ctx, acme.ID, s.drop); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("second offboard: %v", err)
	}
	create(t, c, s, "acme") // the id is free again
}

func TestCreateTenantRejectsBadInputAndLeavesNothing(t *testing.T) {
	forEachEngine(t, testCreateTenantRejectsBadInputAndLeavesNothing)
}

func testCreateTenantRejectsBadInputAndLeavesNothing(t *testing.T, f *fixture) {
	ctx := context.Background()
	c := f.open(t)
	s := newStorage()
	id := tenant.MustParse("broken")
	cases := []struct {
		name string
		t    catalog.Tenant
		want error
	}{
		{"an unknown tier", catalog.Tenant{ID: id, Tier: "gold", Placement: pooled}, catalog.ErrInvalidTier},
		{"a name with control characters", catalog.Tenant{ID: id, Name: "a\x00b", Placement: pooled}, catalog.ErrInvalidName},
		{"an unknown mode", catalog.Tenant{ID: id, Placement: store.Placement{Mode: "shared", Shard: "local"}}, store.ErrInvalidIsolation},
		{"no id", catalog.Tenant{Placement: pooled}, tenant.ErrMissing},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			if _, err := c.CreateTenant(ctx, tc.t, s.provision); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	s.failFor[id] = errors.New("disk full")
	if _, err := c.CreateTenant(ctx, catalog.Tenant{ID: id, Placement: pooled}, s.provision); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("failing provision: %v", err)
	}
	if _, err := c.Tenant(ctx, id); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("a failed provision left the tenant behind: %v", err)
	}
	list, err := c.ListTenants(ctx, "", 100)
	if err != nil || len(list) != 0 {
		t.Fatalf("list = %v, %v", list, err)
	}
}

func TestKeysAuthenticateRevokeAndSuspend(t *testing.T) {
	forEachEngine(t, testKeysAuthenticateRevokeAndSuspend)
}

func testKeysAuthenticateRevokeAndSuspend(t *testing.T, f *fixture) {
	ctx := context.Background()
	c := f.open(t)
	s := newStorage()
	a := create(t, c, s, "acme")
	b := create(t, c, s, "globex")

	ka, tokA, err := c.CreateKey(ctx, a.ID, catalog.RoleWriter, "ci")
	if err != nil {
		t.Fatal(err)
	}
	_, tokB, err := c.CreateKey(ctx, b.ID, catalog.RoleReader, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tokA, "bk_"+ka.ID+"_") {
		t.Fatalf("token %q does not have the bk_<key_id>_<secret> shape", tokA)
	}
	p, err := c.Authenticate(ctx, tokA)
	if err != nil || p.Tenant != a.ID || p.Role != catalog.RoleWriter || p.KeyID != ka.ID {
		t.Fatalf("authenticate A = %+v, %v", p, err)
	}
	if p, err := c.Authenticate(ctx, tokB); err != nil || p.Tenant != b.ID {
		t.Fatalf("authenticate B = %+v, %v", p, err)
	}

	t.Run("the secret is never stored in clear", func(t *testing.T) {
		_, secret, _ := catalog.ParseToken(tokA)
		raw := f.raw(t)
		if !bytes.Contains(raw, []byte(ka.ID)) {
			t.Fatal("the raw dump does not hold the key id: the check would prove nothing")
		}
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatal("the catalog stores the secret")
		}
	})
	c = f.open(t) // a second handle on the same catalog sees the keys

	t.Run("forged and malformed tokens are refused", func(t *testing.T) {
		keyID, secret, _ := catalog.ParseToken(tokA)
		flipped := []byte(secret)
		flipped[0] ^= 1
		if flipped[0] == '_' || flipped[0] == '-' {
			flipped[0] = 'A'
		}
		for _, tok := range []string{"", "bk_", tokA + "x", tokA[:len(tokA)-1], "bk_" + keyID + "_" + string(flipped),
			"bk_" + strings.ToUpper(keyID) + "_" + secret, "Bearer " + tokA, strings.Replace(tokA, "bk_", "bx_", 1)} {
			if _, err := c.Authenticate(ctx, tok); !errors.Is(err, catalog.ErrUnauthenticated) {
				t.Errorf("token %q: err = %v, want ErrUnauthenticated", tok, err)
			}
		}
	})

	t.Run("another tenant cannot revoke or list a key", func(t *testing.T) {
		if err := c.RevokeKey(ctx, b.ID, ka.ID); !errors.Is(err, catalog.ErrKeyNotFound) {
			t.Fatalf("B revoking A's key: %v", err)
		}
		if _, err := c.Authenticate(ctx, tokA); err != nil {
			t.Fatalf("A's key stopped working: %v", err)
		}
		keys, err := c.ListKeys(ctx, b.ID)
		if err != nil || len(keys) != 1 || keys[0].Tenant != b.ID {
			t.Fatalf("B's keys = %+v, %v", keys, err)
		}
	})

	t.Run("suspension takes effect on the next request", func(t *testing.T) {
		if _, err := c.Authenticate(ctx, tokA); err != nil { // warm the cache
			t.Fatal(err)
		}
		if _, err := c.Suspend(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authenticate(ctx, tokA); !errors.Is(err, catalog.ErrSuspended) {
			t.Fatalf("suspended: %v", err)
		}
		if _, err := c.Authenticate(ctx, tokB); err != nil {
			t.Fatalf("B is affected by A's suspension: %v", err)
		}
		if _, err := c.Resume(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authenticate(ctx, tokA); err != nil {
			t.Fatalf("resumed: %v", err)
		}
	})

	t.Run("revocation takes effect on the next request", func(t *testing.T) {
		if err := c.RevokeKey(ctx, a.ID, ka.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authenticate(ctx, tokA); !errors.Is(err, catalog.ErrUnauthenticated) {
			t.Fatalf("revoked: %v", err)
		}
		keys, _ := c.ListKeys(ctx, a.ID)
		if len(keys) != 1 || keys[0].RevokedAt == nil {
			t.Fatalf("keys = %+v", keys)
		}
	})

	t.Run("offboarding kills the keys and a recreated tenant does not inherit them", func(t *testing.T) {
		if err := c.Offboard(ctx, b.ID, s.drop); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authenticate(ctx, tokB); !errors.Is(err, catalog.ErrUnauthenticated) {
			t.Fatalf("offboarded: %v", err)
		}
		create(t, c, s, "globex")
		if _, err := c.Authenticate(ctx, tokB); !errors.Is(err, catalog.ErrUnauthenticated) {
			t.Fatalf("old key works for the recreated tenant: %v", err)
		}
		if keys, _ := c.ListKeys(ctx, b.ID); len(keys) != 0 {
			t.Fatalf("recreated tenant has keys %+v", keys)
		}
	})

	if _, _, err := c.CreateKey(ctx, a.ID, "owner", ""); !errors.Is(err, catalog.ErrInvalidRole) {
		t.Fatalf("bad role: %v", err)
	}
	if _, _, err := c.CreateKey(ctx, tenant.MustParse("nobody"), catalog.RoleAdmin, ""); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("key for unknown tenant: %v", err)
	}
}

func TestInterruptedOffboardingIsFinished(t *testing.T) {
	forEachEngine(t, testInterruptedOffboardingIsFinished)
}

func testInterruptedOffboardingIsFinished(t *testing.T, f *fixture) {
	ctx := context.Background()
	c := f.open(t)
	s := newStorage()
	a := create(t, c, s, "acme")
	create(t, c, s, "globex")
	_, tok, _ := c.CreateKey(ctx, a.ID, catalog.RoleAdmin, "")
	s.failFor[a.ID] = errors.New("io error")
	if err := c.Offboard(ctx, a.ID, s.drop); err == nil {
		t.Fatal("offboard with a failing drop succeeded")
	}
	got, err := c.Tenant(ctx, a.ID)
	if err != nil || got.State != catalog.Deleting {
		t.Fatalf("after failed drop: %+v, %v", got, err)
	}
	if _, err := c.Authenticate(ctx, tok); !errors.Is(err, catalog.ErrUnauthenticated) {
		t.Fatalf("a tenant being deleted still authenticates: %v", err)
	}
	if _, err := c.Placement(ctx, a.ID); !errors.Is(err, store.ErrUnknownTenant) {
		t.Fatalf("a tenant being deleted still has a placement: %v", err)
	}
	if _, err := c.Resume(ctx, a.ID); !errors.Is(err, catalog.ErrInvalidState) {
		t.Fatalf("resuming a tenant being deleted: %v", err)
	}
	delete(s.failFor, a.ID)
	if err := c.ResumeOffboarding(ctx, s.drop); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tenant(ctx, a.ID); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("after resume: %v", err)
	}
	if _, err := c.Tenant(ctx, tenant.MustParse("globex")); err != nil {
		t.Fatalf("globex was touched: %v", err)
	}
}

func TestListTenantsPages(t *testing.T) { forEachEngine(t, testListTenantsPages) }

func testListTenantsPages(t *testing.T, f *fixture) {
	c := f.open(t)
	s := newStorage()
	for _, id := range []string{"delta", "alpha", "charlie", "bravo", "echo"} {
		create(t, c, s, id)
	}
	var seen []string
	after := ""
	for {
		page, err := c.ListTenants(context.Background(), after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, tn := range page {
			seen = append(seen, tn.ID.String())
		}
		after = page[len(page)-1].ID.String()
	}
	if strings.Join(seen, ",") != "alpha,bravo,charlie,delta,echo" {
		t.Fatalf("pages = %v", seen)
	}
	counts, err := c.CountByShard(context.Background())
	if err != nil || counts["local"] != 5 {
		t.Fatalf("counts = %v, %v", counts, err)
	}
}

func TestRoles(t *testing.T) {
	cases := []struct {
		have, need catalog.Role
		ok         bool
	}{
		{catalog.RoleAdmin, catalog.RoleWriter, true},
		{catalog.RoleWriter, catalog.RoleWriter, true},
		{catalog.RoleReader, catalog.RoleWriter, false},
		{catalog.RoleWriter, catalog.RoleAdmin, false},
		{"", catalog.RoleReader, false},
	}
	for _, tc := range cases {
		if got := tc.have.Allows(tc.need); got != tc.ok {
			t.Errorf("%q allows %q = %v, want %v", tc.have, tc.need, got, tc.ok)
		}
	}
}
