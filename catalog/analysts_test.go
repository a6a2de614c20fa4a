package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/analytics"
	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func TestAnalystsAndBudgets(t *testing.T) {
	forEachEngine(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		c := f.open(t)
		other := f.open(t) // a second instance
		if _, _, err := c.CreateAnalyst(ctx, "ann", -1); !errors.Is(err, analytics.ErrInvalidEpsilon) {
			t.Fatalf("negative budget: %v", err)
		}
		if _, _, err := c.CreateAnalyst(ctx, "", analytics.EpsilonUnit); !errors.Is(err, catalog.ErrInvalidName) {
			t.Fatalf("empty name: %v", err)
		}
		a, tok, err := c.CreateAnalyst(ctx, "ann", 2*analytics.EpsilonUnit)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok, "bka_"+a.ID+"_") || !catalog.IsAnalystToken(tok) || catalog.IsAgentToken(tok) {
			t.Fatalf("token %q for analyst %s", tok, a.ID)
		}
		if got, err := other.AuthenticateAnalyst(ctx, tok); err != nil || got.ID != a.ID {
			t.Fatalf("authenticate: %v %v", got, err)
		}
		flip := []byte(tok)
		if flip[len(flip)-10] = 'x'; tok[len(tok)-10] == 'x' {
			flip[len(flip)-10] = 'y'
		}
		agentish := strings.Replace(tok, "bka_", "bks_", 1)
		for _, bad := range []string{string(flip), "bka_x", tok + "x", agentish} {
			if _, err := c.AuthenticateAnalyst(ctx, bad); !errors.Is(err, catalog.ErrUnauthenticated) {
				t.Errorf("AuthenticateAnalyst(%q) = %v, want ErrUnauthenticated", bad, err)
			}
		}
		if _, err := c.AuthenticateAgent(ctx, agentish); !errors.Is(err, catalog.ErrUnauthenticated) {
			t.Errorf("an analyst's secret authenticates as a support agent: %v", err)
		}
		if raw := f.raw(t); bytes.Contains(raw, []byte(tok[len(tok)-43:])) {
			t.Fatal("the analyst secret is stored in clear")
		}

		// Spends are exact and refused, spending nothing, when too little remains.
		left, err := c.SpendBudget(ctx, a.ID, 1_500_000)
		if err != nil || left != 500_000 {
			t.Fatalf("spend 1.5 of 2: %v left, %v", left, err)
		}
		if _, err := other.SpendBudget(ctx, a.ID, 500_001); !errors.Is(err, analytics.ErrBudgetExhausted) {
			t.Fatalf("overspend: %v, want ErrBudgetExhausted", err)
		}
		if got, _ := c.Analyst(ctx, a.ID); got.Spent != 1_500_000 || got.Remaining != 500_000 {
			t.Fatalf("after a refused spend: %+v", got)
		}
		for _, bad := range []analytics.Epsilon{0, -1} {
			if _, err := c.SpendBudget(ctx, a.ID, bad); !errors.Is(err, analytics.ErrInvalidEpsilon) {
				t.Errorf("spend %d: %v", bad, err)
			}
		}
		if _, err := c.SpendBudget(ctx, "nosuchanalystxxxxxxxxxxxxx", 1); !errors.Is(err, catalog.ErrAnalystNotFound) {
			t.Errorf("unknown analyst: %v", err)
		}

		// Concurrent spends never overdraw: 20 spends of 0.1 against 0.5 left.
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := other.SpendBudget(ctx, a.ID, 100_000)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, analytics.ErrBudgetExhausted):
					t.Errorf("concurrent spend: %v", err)
				}
			}()
		}
		wg.Wait()
		if got, _ := c.Analyst(ctx, a.ID); ok != 5 || got.Remaining != 0 || got.Spent != got.Budget {
			t.Fatalf("%d concurrent spends succeeded, analyst %+v; want 5 and nothing left", ok, got)
		}

		b, btok, err := c.CreateAnalyst(ctx, "bob", analytics.EpsilonUnit)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.RevokeAnalyst(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := other.AuthenticateAnalyst(ctx, btok); !errors.Is(err, catalog.ErrUnauthenticated) {
			t.Errorf("revoked analyst authenticates: %v", err)
		}
		if _, err := c.SpendBudget(ctx, b.ID, 1); !errors.Is(err, catalog.ErrAnalystNotFound) {
			t.Errorf("revoked analyst spends: %v", err)
		}
		if err := c.RevokeAnalyst(ctx, "nope"); !errors.Is(err, catalog.ErrAnalystNotFound) {
			t.Errorf("revoke unknown: %v", err)
		}
		list, err := other.ListAnalysts(ctx)
		if err != nil || len(list) != 2 || list[0].ID != a.ID || list[1].RevokedAt == nil || list[1].Remaining != analytics.EpsilonUnit {
			t.Fatalf("list: %+v %v", list, err)
		}
	})
}

func TestActiveTenants(t *testing.T) {
	forEachEngine(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		c := f.open(t)
		for i, id := range []string{"acme", "beta", "gamma"} {
			tier := catalog.Tiers[i]
			if _, err := c.CreateTenant(ctx, catalog.Tenant{ID: tenant.MustParse(id), Tier: tier,
				Placement: store.Placement{Mode: store.Pooled, Shard: "local"}}, noop); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Suspend(ctx, tenant.MustParse("beta")); err != nil {
			t.Fatal(err)
		}
		var got []string
		err := c.ActiveTenants(ctx, func(m analytics.Member) error {
			got = append(got, m.ID.String()+"="+m.Attrs[analytics.AttrTier])
			return nil
		})
		if err != nil || strings.Join(got, ",") != "acme=free,gamma=enterprise" {
			t.Fatalf("ActiveTenants = %v, %v; want the active ones with their tier", got, err)
		}
	})
}
