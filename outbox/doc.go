// Package outbox works on tenants' transactional outboxes (store.Event,
// store.EventTx) in the background, always one tenant at a time and in a
// context that names that tenant alone (tenant.WithID, DESIGN invariant 3):
//
//   - a Trimmer deletes each tenant's old events, by age and by count;
//   - a Dispatcher runs a team's in-process handlers on each tenant's
//     events, in Seq order, at least once, with each consumer's position
//     saved durably in the tenant's own database.
//
// Both list the tenants to visit from a Tenants source (CatalogTenants
// for a catalog) and reach each tenant's storage only through the store
// Router, so a bug in a handler cannot widen its reach to other tenants:
// the context a handler gets names the tenant of the event it handles, and
// a context without a tenant fails at the Router (tenant.ErrMissing).
//
// Trimming does not wait for consumers. The outbox is bounded storage: an
// event older than the maximum age, or beyond a tenant's newest maximum
// count, is deleted whether or not every consumer has passed it. A reader
// whose position fell behind a trim gets store.ErrEventsExpired and must
// catch up by other means (a fresh copy of the records) before it resumes
// at the oldest kept event (Tx.EventBounds); the Dispatcher does so through
// DispatcherOptions.Expired. Waiting for the slowest consumer would let one
// stalled consumer grow a tenant's outbox without bound.
//
// A dispatcher wired to a router:
//
//	var d *outbox.Dispatcher
//	router, _ := store.NewRouter(store.Config{ /* ... */,
//		EventsCommitted: func(id tenant.ID) { d.Notify(id) }}) // nil-safe
//	d, _ = outbox.NewDispatcher(outbox.DispatcherOptions{Store: router, Tenants: outbox.CatalogTenants(cat)})
//	d.Handle("mailer", func(ctx context.Context, ev store.Event) error {
//		// ctx names ev.Tenant: the router reads this tenant's records only.
//		return router.ReadTx(ctx, func(tx *store.Tx) error { /* ... */ return nil })
//	})
//	go d.Run(ctx)
package outbox
