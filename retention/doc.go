// Package retention enforces tenants' retention rules: per collection, a
// maximum age past which a tenant's records (by updated_at, a plaintext
// column: never the record data) are purged.
//
// A Sweeper runs the purge: every interval (Run) or on demand (Sweep) it
// reads the rules (catalog.Catalog.RetentionRules), computes each rule's
// cutoff once for the run, and purges expired records with store.Tx.Purge,
// each tenant in a context naming that tenant alone (tenant.WithID) and in
// transactions of its own, so a purge goes through the Router like any
// request and can only reach the tenant's own placement.
//
// Fairness. A run visits the tenants with rules round-robin: in each round
// every tenant that still has expired records gets one transaction that
// purges at most BatchSize of them (across its collections, in name
// order), and a tenant leaves the run once it has nothing left to purge or
// has purged MaxPerRun records. So one tenant with millions of expired
// records costs the others at most one bounded batch per round, and the
// run itself is bounded by MaxPerRun per tenant; what is left is purged by
// the next runs, oldest first. Each run starts the rotation one tenant
// further along, so no tenant is always first.
//
// Each tenant whose records a run purged gets one audit entry on its own
// chain (action "retention.purge", resource "tenant/<id>", decision
// "purged:<records>"), and the purges are counted in Prometheus metrics
// (bulkhead_retention_*), with tenant label values bounded by the caller.
//
// Usage stays exact: Tx.Purge takes what it deleted off the tenant's usage
// in the same transaction.
package retention
