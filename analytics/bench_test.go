package analytics_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/analytics"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// BenchmarkQueryOverhead measures a sum query over 20 tenants of 100
// records each against a baseline measured in the same run: reading the
// same records, tenant by tenant in the same transactions, and nothing
// else. It reports query/read, the cost of parsing, clamping, noise and
// the budget spend on top of the reads.
func BenchmarkQueryOverhead(b *testing.B) {
	w := newWorld(b)
	recs := make([]float64, 100)
	for i := range recs {
		recs[i] = float64(i)
	}
	for i := range 20 {
		w.tenant(b, fmt.Sprintf("b%02d", i), "standard", "orders", amounts(recs...)...)
	}
	e, _ := analytics.New(analytics.Options{Tenants: w.cat, Budget: w.cat, Store: w.router})
	ana := w.analyst(b, analytics.MaxEpsilon)
	ctx := context.Background()
	q := analytics.Query{Collection: "orders", Field: "amount", Agg: analytics.Sum, GroupBy: analytics.AttrTier,
		Lower: 0, Upper: 100, MaxRecords: 100, Epsilon: 0.000001}
	read := func() error {
		return w.cat.ActiveTenants(ctx, func(m analytics.Member) error {
			return w.router.ReadTx(tenant.WithID(ctx, m.ID), func(tx *store.Tx) error {
				opts := store.ListOptions{Limit: 200}
				for {
					p, err := tx.List(ctx, "orders", opts)
					if err != nil || p.NextCursor == "" {
						return err
					}
					opts.Cursor = p.NextCursor
				}
			})
		})
	}
	var base, query time.Duration
	for b.Loop() {
		start := time.Now()
		if err := read(); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if _, err := e.Run(ctx, ana, q); err != nil {
			b.Fatal(err)
		}
		base, query = base+mid.Sub(start), query+time.Since(mid)
	}
	b.ReportMetric(float64(query)/float64(base), "query/read")
}
