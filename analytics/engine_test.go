package analytics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/bulkhead-dev/bulkhead/analytics"
	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// world is a real SQLite fleet and catalog with tenants and records.
type world struct {
	cat    *catalog.Catalog
	fleet  *fleet.Fleet
	router *store.Router
}

func newWorld(t testing.TB) *world {
	t.Helper()
	dir := t.TempDir()
	b, err := sqlite.Open(dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(filepath.Join(dir, "control.db"), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fl, err := fleet.New(fleet.Config{Catalog: cat, Backends: map[string]store.Backend{"local": b},
		Router: store.Config{CursorKey: make([]byte, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Close(); cat.Close() })
	return &world{cat: cat, fleet: fl, router: fl.Router()}
}

// tenant creates a tenant of tier holding the records (JSON objects) in
// collection.
func (w *world) tenant(t testing.TB, id, tier, collection string, records ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := w.fleet.Create(ctx, fleet.Spec{ID: id, Tier: &tier}); err != nil {
		t.Fatal(err)
	}
	err := w.router.Tx(tenant.WithID(ctx, tenant.MustParse(id)), func(tx *store.Tx) error {
		for _, r := range records {
			if _, err := tx.Create(ctx, collection, []byte(r)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (w *world) engine(t *testing.T, seed byte) *analytics.Engine {
	t.Helper()
	e, err := analytics.New(analytics.Options{Tenants: w.cat, Budget: w.cat, Store: w.router})
	if err != nil {
		t.Fatal(err)
	}
	analytics.SetRand(e, rand.NewChaCha8([32]byte{seed}))
	return e
}

func (w *world) analyst(t testing.TB, budget analytics.Epsilon) string {
	t.Helper()
	a, _, err := w.cat.CreateAnalyst(context.Background(), "ann", budget)
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

func amounts(vs ...float64) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprintf(`{"amount": %s, "note": "x"}`, strconv.FormatFloat(v, 'g', -1, 64))
	}
	return out
}

// TestKThreshold: a group backed by K-1 tenants is absent (a suspended
// tenant, and tenants without the collection or the field, do not back
// it); a group with K is present; no group means an empty answer.
func TestKThreshold(t *testing.T) {
	w := newWorld(t)
	for i := range analytics.DefaultK - 1 { // free: K-1 backing tenants
		w.tenant(t, fmt.Sprintf("free%d", i), "free", "orders", amounts(1, 2)...)
	}
	w.tenant(t, "freesusp", "free", "orders", amounts(1)...)
	if _, err := w.fleet.Suspend(context.Background(), tenant.MustParse("freesusp")); err != nil {
		t.Fatal(err)
	}
	w.tenant(t, "freeother", "free", "invoices", amounts(1)...)           // no orders
	w.tenant(t, "freenofield", "free", "orders", `{"note": "no amount"}`) // no field
	for i := range analytics.DefaultK {                                   // enterprise: exactly K
		w.tenant(t, fmt.Sprintf("ent%d", i), "enterprise", "orders", amounts(3)...)
	}
	e, ana := w.engine(t, 1), w.analyst(t, 100*analytics.EpsilonUnit)
	ctx := context.Background()
	res, err := e.Run(ctx, ana, analytics.Query{Collection: "orders", Field: "amount", Agg: analytics.Count, GroupBy: "tier", Epsilon: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 1 || res.Groups[0].Key != "enterprise" {
		t.Fatalf("groups %+v: want only enterprise (free has %d backing tenants)", res.Groups, analytics.DefaultK-1)
	}
	// Ungrouped, all of them back the one group.
	res, err = e.Run(ctx, ana, analytics.Query{Collection: "orders", Field: "amount", Agg: analytics.Count, Epsilon: 1})
	if err != nil || len(res.Groups) != 1 || res.Groups[0].Key != "" {
		t.Fatalf("ungrouped: %+v, %v", res, err)
	}
	// An unknown collection is an empty answer (and still costs ε).
	res, err = e.Run(ctx, ana, analytics.Query{Collection: "nothing", Agg: analytics.Count, GroupBy: "tier", Epsilon: 1})
	if err != nil || len(res.Groups) != 0 || res.Epsilon != analytics.EpsilonUnit {
		t.Fatalf("unknown collection: %+v, %v", res, err)
	}
}

// TestNoisyAnswersNearTruth: with many tenants, a count and a clamped sum
// on a decimal grid come out within a generous bound (12 noise scales:
// P(|Z| > 12b) < 2e-5 per answer, and the seeded source makes the run
// reproducible) of the truth computed here; per-tenant caps and clamps hold.
func TestNoisyAnswersNearTruth(t *testing.T) {
	w := newWorld(t)
	const n = 40
	for i := range n {
		vs := []float64{float64(i), 2.5, -100, 1e9} // clamped to [-1, 10]: i→min(i,10), 2.5, -1, 10
		if i == 0 {
			vs = append(vs, 1, 1, 1, 1, 1, 1) // 10 records: only the first 4 count
		}
		w.tenant(t, fmt.Sprintf("t%02d", i), "standard", "orders", amounts(vs...)...)
	}
	e, ana := w.engine(t, 7), w.analyst(t, 100*analytics.EpsilonUnit)
	ctx := context.Background()
	count, err := e.Run(ctx, ana, analytics.Query{Collection: "orders", Field: "amount", Agg: analytics.Count,
		GroupBy: "tier", MaxRecords: 4, Epsilon: 2})
	if err != nil {
		t.Fatal(err)
	}
	const wantCount = n * 4
	checkNear(t, "count", count, wantCount)
	if count.NoiseScale != 2 { // Δ = 4 records, ε = 2
		t.Errorf("count noise scale %g, want 2", count.NoiseScale)
	}

	// The truth of the sum reads the same records the engine does: each
	// tenant's first 4 in id order, clamped.
	wantSum := truthSum(t, w, 4, -1, 10)
	sum, err := e.Run(ctx, ana, analytics.Query{Collection: "orders", Field: "amount", Agg: analytics.Sum, GroupBy: "tier",
		Lower: -1, Upper: 10, Decimals: 1, MaxRecords: 4, Epsilon: 4})
	if err != nil {
		t.Fatal(err)
	}
	checkNear(t, "sum", sum, wantSum)
	if sum.NoiseScale != 10 { // Δ = 4 × 10 = 40 (400 grid steps of 0.1), ε = 4
		t.Errorf("sum noise scale %g, want 10", sum.NoiseScale)
	}
	if got := sum.Groups[0].Value; len(got) < 3 || got[len(got)-2] != '.' {
		t.Errorf("sum %q is not on the 0.1 grid", got)
	}
	// The same seed gives the same answer; the noise is really there.
	again, _ := w.engine(t, 7).Run(ctx, ana, analytics.Query{Collection: "orders", Field: "amount", Agg: analytics.Count,
		GroupBy: "tier", MaxRecords: 4, Epsilon: 2})
	if again.Groups[0].Value != count.Groups[0].Value {
		t.Errorf("seeded runs differ: %s and %s", again.Groups[0].Value, count.Groups[0].Value)
	}
	noisy := false
	for seed := range byte(8) {
		r, _ := w.engine(t, 100+seed).Run(ctx, ana, analytics.Query{Collection: "orders", Field: "amount",
			Agg: analytics.Count, GroupBy: "tier", MaxRecords: 4, Epsilon: 2})
		noisy = noisy || r.Groups[0].Value != strconv.Itoa(int(wantCount))
	}
	if !noisy {
		t.Error("8 answers of scale 2 all equal the truth: no noise")
	}
}

// truthSum is each tenant's first cap records, clamped, summed.
func truthSum(t *testing.T, w *world, cap int, lo, hi float64) float64 {
	t.Helper()
	total := 0.0
	err := w.cat.ActiveTenants(context.Background(), func(m analytics.Member) error {
		return w.router.ReadTx(tenant.WithID(context.Background(), m.ID), func(tx *store.Tx) error {
			page, err := tx.List(context.Background(), "orders", store.ListOptions{Limit: cap})
			for _, r := range page.Items {
				var v struct{ Amount float64 }
				if err := json.Unmarshal(r.Data, &v); err != nil {
					return err
				}
				total += min(max(v.Amount, lo), hi)
			}
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

func checkNear(t *testing.T, what string, r analytics.Result, want float64) {
	t.Helper()
	if len(r.Groups) != 1 || r.Groups[0].Key != "standard" {
		t.Fatalf("%s: groups %+v, want standard only", what, r.Groups)
	}
	got, err := strconv.ParseFloat(r.Groups[0].Value, 64)
	if err != nil {
		t.Fatalf("%s: value %q: %v", what, r.Groups[0].Value, err)
	}
	if math.Abs(got-want) > 12*r.NoiseScale {
		t.Errorf("%s: %g, truth %g: further than 12 noise scales (%g)", what, got, want, r.NoiseScale)
	}
}

// TestBudget: each query spends its ε; one that asks more than remains is
// refused and spends nothing, as is a bad query.
func TestBudget(t *testing.T) {
	w := newWorld(t)
	w.tenant(t, "acme", "standard", "orders", amounts(1)...)
	e, ana := w.engine(t, 3), w.analyst(t, analytics.EpsilonUnit)
	ctx := context.Background()
	q := analytics.Query{Collection: "orders", Agg: analytics.Count, Epsilon: 0.7}
	res, err := e.Run(ctx, ana, q)
	if err != nil || res.Remaining != 300_000 || res.Epsilon != 700_000 {
		t.Fatalf("first query: %+v, %v", res, err)
	}
	if _, err := e.Run(ctx, ana, q); !errors.Is(err, analytics.ErrBudgetExhausted) {
		t.Fatalf("second query: %v, want ErrBudgetExhausted", err)
	}
	bad := q
	bad.Agg, bad.Epsilon = "median", 0.1
	if _, err := e.Run(ctx, ana, bad); !errors.Is(err, analytics.ErrInvalidAgg) {
		t.Fatalf("bad query: %v", err)
	}
	a, _ := w.cat.Analyst(ctx, ana)
	if a.Spent != 700_000 {
		t.Fatalf("spent %s, want 0.7: refusals must spend nothing", a.Spent)
	}
	q.Epsilon = 0.3
	if res, err := e.Run(ctx, ana, q); err != nil || res.Remaining != 0 {
		t.Fatalf("the last 0.3: %+v, %v", res, err)
	}
}
