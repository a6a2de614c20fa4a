// Package sched is a weighted fair scheduler of background work across
// tenants: a relay, a sweeper or a job runner marks a tenant ready when it
// has work, and workers take tenants one at a time in a fair order, run a
// bounded batch for each, and hand them back.
//
// The guarantees:
//
//   - A tenant marked ready any number of times is queued once.
//   - A tenant is handed to at most one worker at a time (per-tenant
//     concurrency 1), so a tenant's batches run one after the other, in
//     order; a Ready that arrives while its batch runs queues it again
//     after the batch.
//   - Among tenants that stay backlogged, each gets a share of the work
//     proportional to its weight (start-time fair queuing: every tenant has
//     a virtual time that advances by cost/weight with each batch, and the
//     queued tenant with the lowest one goes next). A tenant that was idle
//     starts at the scheduler's current virtual time: it gets no credit
//     for the time it had nothing to do, so it cannot burst past the
//     others afterwards, and it waits at most one round.
//   - A batch can hold its tenant back for a while (Outcome.Delay: a rate
//     limit, a backoff after an error); Ready calls in that time are
//     remembered, not lost.
//
// The scheduler knows tenants only by id. The work function re-enters the
// tenant explicitly with tenant.WithID (Run does it), never by looking at
// "all tenants".
//
//	s := sched.New(sched.Options{Weight: func(id tenant.ID) int { return weights[id] }})
//	go s.Run(ctx, 4, func(ctx context.Context) sched.Outcome {
//		id, _ := tenant.FromContext(ctx) // the tenant this batch is for
//		n, more := doBatch(ctx, id)
//		return sched.Outcome{Cost: n, More: more}
//	})
//	s.Ready(id) // whenever id has new work
//
// internal/fair's DRR (the admission queue) serves queues of items; here
// a tenant is one entry that leaves the queue while its batch runs and
// comes back with the batch's cost, which virtual times account for
// directly.
package sched
