// Package usage keeps each tenant's last known storage usage (records and
// bytes) in memory and publishes it as Prometheus gauges whose label values
// stay bounded however many tenants there are.
//
// Reading every tenant's usage at scrape time would cost one store
// transaction per tenant per scrape, and one label value per tenant would
// make the series unbounded. So a Tracker remembers the last usage seen of
// each tenant (at most MaxTracked of them), fed at no extra cost by the
// writes that commit through WriteTx and by reads that see usage anyway
// (Observe), and by a Sweeper that reads every serving tenant's usage at a
// paced rate. A Collector publishes the biggest tenants by name and folds
// the rest into one telemetry.OtherTenant series.
//
//	tr := usage.NewTracker(0)
//	registry.MustRegister(usage.NewCollector(tr, usage.DefaultTopTenants))
//	sw := usage.NewSweeper(tr, usage.SweeperOptions{Router: router, Tenants: tenants})
//	go sw.Run(ctx, usage.DefaultSweepInterval)
//	...
//	err := tr.WriteTx(ctx, router, func(tx *store.Tx) error {
//		_, _, err := tx.Put(ctx, "invoices", id, data, store.IfMatch{})
//		return err
//	})
//
// Every read a Sweeper makes runs through the router in a context that
// names that one tenant, like any request, so a tenant's numbers can only
// come from its own placement.
package usage
