package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func noop(context.Context, tenant.ID, store.Placement) error { return nil }

func TestAgentsAndGrants(t *testing.T) {
	forEachEngine(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		var off atomic.Int64
		now := func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
		c := f.open(t, catalog.Options{Now: now})
		other := f.open(t, catalog.Options{Now: now}) // a second instance
		acme, beta := tenant.MustParse("acme"), tenant.MustParse("beta")
		for _, id := range []tenant.ID{acme, beta} {
			if _, err := c.CreateTenant(ctx, catalog.Tenant{ID: id, Name: id.String(), Tier: "standard",
				Placement: store.Placement{Mode: store.Pooled, Shard: "local"}}, noop); err != nil {
				t.Fatal(err)
			}
		}
		a, tok, err := c.CreateAgent(ctx, "sam")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok, "bks_"+a.ID+"_") || !catalog.IsAgentToken(tok) {
			t.Fatalf("token %q for agent %s", tok, a.ID)
		}
		if got, err := other.AuthenticateAgent(ctx, tok); err != nil || got.ID != a.ID {
			t.Fatalf("authenticate: %v %v", got, err)
		}
		flip := []byte(tok) // one secret character changed, still base64url
		if flip[len(flip)-10] = 'x'; tok[len(tok)-10] == 'x' {
			flip[len(flip)-10] = 'y'
		}
		for _, bad := range []string{string(flip), "bks_x", tok + "x", strings.Replace(tok, "bks_", "bk_", 1)} {
			if _, err := c.AuthenticateAgent(ctx, bad); !errors.Is(err, catalog.ErrUnauthenticated) {
				t.Errorf("AuthenticateAgent(%q) = %v, want ErrUnauthenticated", bad, err)
			}
		}
		if raw := f.raw(t); bytes.Contains(raw, []byte(tok[len(tok)-43:])) {
			t.Fatal("the agent secret is stored in clear")
		}

		for _, exp := range []time.Duration{-time.Minute, 0, 25 * time.Hour} {
			if _, err := c.CreateGrant(ctx, beta, a.ID, "T-1", now().Add(exp)); !errors.Is(err, catalog.ErrInvalidGrant) {
				t.Errorf("expiry %s: %v, want ErrInvalidGrant", exp, err)
			}
		}
		if _, err := c.CreateGrant(ctx, beta, a.ID, "", now().Add(time.Hour)); !errors.Is(err, catalog.ErrInvalidGrant) {
			t.Errorf("no reason: %v", err)
		}
		if _, err := c.CreateGrant(ctx, tenant.MustParse("gone"), a.ID, "T-1", now().Add(time.Hour)); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("unknown tenant: %v", err)
		}
		g, err := c.CreateGrant(ctx, beta, a.ID, "T-1", now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		live := func(inst *catalog.Catalog, id tenant.ID) bool {
			t.Helper()
			ok, err := inst.LiveGrant(ctx, a.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !live(other, beta) || live(other, acme) {
			t.Fatal("the grant is for beta only")
		}
		if gs, err := other.ListGrants(ctx, beta); err != nil || len(gs) != 1 || gs[0].ID != g.ID || gs[0].Reason != "T-1" {
			t.Fatalf("list: %v %v", gs, err)
		}
		if err := other.RevokeGrant(ctx, acme, g.ID); !errors.Is(err, catalog.ErrGrantNotFound) {
			t.Fatalf("revoke through another tenant: %v", err)
		}
		off.Add(int64(61 * time.Minute))
		if live(c, beta) {
			t.Fatal("an expired grant is live")
		}
		g2, err := c.CreateGrant(ctx, beta, a.ID, "T-2", now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := other.RevokeGrant(ctx, beta, g2.ID); err != nil {
			t.Fatal(err)
		}
		if live(c, beta) {
			t.Fatal("a revoked grant is live on another instance")
		}
		if _, err := c.CreateGrant(ctx, beta, a.ID, "T-3", now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := other.RevokeAgent(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if live(c, beta) {
			t.Fatal("a revoked agent's grant is live")
		}
		if _, err := c.AuthenticateAgent(ctx, tok); !errors.Is(err, catalog.ErrUnauthenticated) {
			t.Fatalf("revoked agent authenticates: %v", err)
		}
		if _, err := c.CreateGrant(ctx, beta, a.ID, "T-4", now().Add(time.Hour)); !errors.Is(err, catalog.ErrAgentNotFound) {
			t.Fatalf("grant for a revoked agent: %v", err)
		}
		if err := c.RevokeAgent(ctx, "aaaaaaaaaaaaaaaaaaaa"); !errors.Is(err, catalog.ErrAgentNotFound) {
			t.Fatalf("revoke unknown agent: %v", err)
		}
	})
}
