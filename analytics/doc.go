// Package analytics answers aggregate-only questions across tenants —
// noisy counts and sums of a collection's field, grouped by a tenant
// attribute such as the tier — for analysts, never for tenants or the
// operator, without revealing any one tenant's data.
//
// Three things protect each tenant:
//
//   - Differential privacy, with the tenant as the privacy unit. Each
//     tenant contributes at most Query.MaxRecords records to its one group,
//     and for a sum each value is clamped to [Lower, Upper] on a
//     fixed-point grid of 10^-Decimals; so adding or removing a tenant
//     moves one group's true answer by at most the sensitivity Δ (see
//     Query). Every answered group gets discrete Laplace noise of scale
//     Δ/ε, which makes the answer ε-differentially private.
//   - A k-threshold: a group backed by fewer than K tenants (DefaultK = 5)
//     is left out of the answer, with no sign that it exists. A tenant
//     backs a group when at least one of its records contributes. The
//     threshold is applied to the true number of backing tenants, which is
//     never shown: whether a group appears is therefore not covered by ε.
//     It is one bit per group whose key comes from a small public set (the
//     tiers); a noisy threshold (Google's and OpenDP's partition
//     selection, (ε, δ)-DP) would cover it too and is left for later.
//   - A privacy budget per analyst (Budget; the catalog keeps it): each
//     query spends its ε atomically before any data is read, and a query
//     whose ε exceeds what remains is refused, spending nothing. The
//     groups are disjoint, so one query costs ε however many groups it
//     answers; successive queries add up (basic composition).
//
// The noise is sampled exactly, in integers, from crypto/rand (OpenDP's
// approach: Canonne, Kamath and Steinke 2020), never with floating-point
// Laplace sampling, whose rounding leaks the true answer (Mironov 2012).
// Field values are read as JSON numbers (float64), rounded to the grid and
// clamped there: rounding cannot raise the sensitivity, and the sum and
// its noise are integers on the grid, printed as exact decimals. Google's
// differential-privacy Go module would have been the first choice, but it
// is not available to this build; the sampler here is small and tested
// against the distribution's moments.
//
// Each tenant is read in its own tenant context and read transaction
// (store.Router.ReadTx under tenant.WithID), a page at a time, so record
// encryption and every other store guarantee apply as they do to the
// tenant's own requests, and memory stays bounded whatever the fleet's
// size.
//
// A team embedding Bulkhead builds an Engine from its catalog and router:
//
//	eng, err := analytics.New(analytics.Options{Tenants: cat, Budget: cat, Store: router})
//	res, err := eng.Run(ctx, analystID, analytics.Query{
//		Collection: "orders", Field: "amount", Agg: analytics.Sum, GroupBy: analytics.AttrTier,
//		Lower: 0, Upper: 1000, MaxRecords: 100, Epsilon: 0.5,
//	})
package analytics
