// Package relay publishes every tenant's transactional outbox (see
// store.Event) to NATS JetStream: subjects <prefix>.<tenant>.<collection>,
// one message per event, with Nats-Msg-Id <tenant>.<incarnation>.<seq> so
// that JetStream drops what a crash makes the relay publish twice.
//
// Delivery is at least once, in each tenant's order: the relay saves its
// position in each tenant's own database (store.Tx.SetEventOffset, consumer
// Consumer) only after JetStream acknowledged every event up to it, and
// starts from it again. Tenants share the relay through a weighted fair
// scheduler (package sched): each batch is one tenant's, at most BatchSize
// events, within a per-tenant token bucket, and runs with the tenant put
// back into its context by tenant.WithID; nothing reads "all tenants".
// Events trimmed from an outbox before the relay got to them are counted
// (bulkhead_relay_expired_total) and skipped.
//
// A service that embeds Bulkhead runs its own relay beside its router:
//
//	s := sched.New(sched.Options{})
//	fl, _ := fleet.OpenSQLite(ctx, dir, fleet.OpenOptions{Router: store.Config{EventsCommitted: s.Ready}})
//	nc, _ := nats.Connect(url)
//	r, _ := relay.New(relay.Options{Conn: nc, Store: fl.Router(), Tenants: fl.Catalog(), Scheduler: s})
//	go r.Run(ctx)
//
// docs/nats.md describes the messages, a nats-server configuration that
// confines each tenant's consumers to its own subjects, and the benchmarks.
package relay
