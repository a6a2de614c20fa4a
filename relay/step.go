package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/sched"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Test hooks, set only by the package's tests (export_test.go): the crash
// test makes a child process exit at these points.
var (
	testHookBeforePublish func(id tenant.ID, evs []store.Event)
	testHookBeforeSave    func(id tenant.ID, seq int64)
)

// tstate is the relay's memory of one tenant (one incarnation).
type tstate struct {
	saveMu   sync.Mutex // held while the offset is saved: one save at a time
	mu       sync.Mutex // guards the fields below
	inc      time.Time  // the incarnation the positions belong to
	loaded   bool       // acked and sent were read from the tenant's offset
	gen      int        // bumped when in-flight batches no longer count
	acked    int64      // every event up to it is acknowledged by JetStream
	saved    int64      // the offset saved in the tenant's database
	savedAt  time.Time  // when a save last began
	sent     int64      // every event up to it is published (maybe not acked)
	inflight []*batch   // published batches awaiting acks, oldest first
	bucket   *bucket
	// unsupported: the backend keeps no outbox (logged once)
	unsupported bool
}

// batch is one published batch awaiting its acks.
type batch struct {
	batchAcks
	gen      int
	to       int64
	n        int       // messages published
	pb       *pubBatch // its messages and buffers (nil once recycled)
	prev     *batch
	done     chan struct{}
	received bool // every ack arrived (set before done is closed)
}

func (r *Relay) state(id tenant.ID) *tstate {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.tenants[id]
	if st == nil {
		st = &tstate{bucket: newBucket(r.opts.Rate, r.opts.Burst, time.Now())}
		r.tenants[id] = st
	}
	return st
}

func (r *Relay) forget(id tenant.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.tenants, id)
	r.weights.Delete(id)
}

// step runs one batch of the tenant in ctx (put there by the scheduler
// with tenant.WithID): read up to BatchSize events after the last one
// published, publish them asynchronously, and leave their acks to a
// goroutine that saves the position once every one arrived.
func (r *Relay) step(ctx context.Context) sched.Outcome {
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return sched.Outcome{} // the scheduler always sets one
	}
	attr := slog.String("tenant", id.String())
	state, inc, err := r.opts.Tenants.Incarnation(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) || err == nil && (state == catalog.Deleting || state == catalog.Provisioning) {
		r.forget(id)
		return sched.Outcome{}
	}
	if err != nil {
		return r.fail(ctx, id, "catalog", err)
	}
	r.readWeight(ctx, id)
	st := r.state(id)
	if err := r.waitRoom(ctx, st); err != nil {
		return sched.Outcome{}
	}
	st.mu.Lock()
	if !st.inc.Equal(inc) {
		// A new tenant (or the first sight of it): positions come from its
		// own database; acks of the old incarnation's batches are ignored.
		st.inc, st.loaded, st.gen, st.inflight = inc, false, st.gen+1, nil
	}
	if !st.loaded {
		var off int64
		err := r.opts.Store.ReadTx(ctx, func(tx *store.Tx) error {
			var err error
			off, err = tx.EventOffset(ctx, Consumer)
			return err
		})
		if errors.Is(err, store.ErrEventsUnsupported) {
			// A backend without an outbox: nothing to relay, said once.
			if !st.unsupported {
				st.unsupported = true
				r.log.Warn("nats relay: the tenant's backend keeps no event outbox; its changes are not relayed",
					attr, slog.String("error", err.Error()))
			}
			st.mu.Unlock()
			return sched.Outcome{}
		}
		if err != nil {
			st.mu.Unlock()
			return r.fail(ctx, id, "read", fmt.Errorf("read the relay's offset: %w", err))
		}
		st.acked, st.saved, st.sent, st.loaded = off, off, off, true
	}
	after, gen := st.sent, st.gen
	n, wait := st.bucket.take(r.opts.BatchSize, time.Now())
	st.mu.Unlock()
	if n == 0 {
		return sched.Outcome{More: true, Delay: wait}
	}

	var evs []store.Event
	var head int64
	err = r.opts.Store.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		evs, head, err = tx.Events(ctx, after, n, nil)
		return err
	})
	st.mu.Lock()
	st.bucket.refund(n - len(evs))
	st.mu.Unlock()
	switch {
	case errors.Is(err, store.ErrEventsExpired):
		return r.skipAhead(ctx, id, st, gen, after)
	case errors.Is(err, store.ErrEventPosition):
		// The position is past the tenant's last event: read it again.
		st.mu.Lock()
		st.loaded = false
		st.mu.Unlock()
		return r.fail(ctx, id, "read", err)
	case err != nil:
		return r.fail(ctx, id, "read", err)
	}
	st.mu.Lock()
	r.opts.Metrics.setLag(id.String(), head-st.acked)
	unsaved := st.saved < st.acked
	st.mu.Unlock()
	if len(evs) == 0 {
		if unsaved { // an earlier save failed
			r.save(ctx, id, st)
		}
		return sched.Outcome{}
	}

	for i := range evs {
		if evs[i].Tenant != id { // defence in depth: never publish under the wrong subject
			return r.fail(ctx, id, "read", fmt.Errorf("the outbox returned an event of another tenant (seq %d); nothing published", evs[i].Seq))
		}
	}
	if h := testHookBeforePublish; h != nil {
		h(id, evs)
	}
	pb := r.newPubBatch(id, inc, evs)
	b := &batch{gen: gen, to: evs[len(evs)-1].Seq, done: make(chan struct{})}
	b.pb, b.msgs, b.all = pb, pb.msgs, make(chan struct{})
	b.pending.Store(1) // the publisher's hold: all is not closed before every message is out
	for i := range evs {
		if err := pb.publish(r, b, i); err != nil {
			r.log.Warn("nats relay: publish failed", attr, slog.Int64("seq", evs[i].Seq), slog.String("error", err.Error()))
			b.fail(errPublish)
			break
		}
		b.n++
	}
	b.answered() // the hold
	st.mu.Lock()
	if st.gen != gen { // reset while publishing: the acks will not count
		st.mu.Unlock()
		return sched.Outcome{More: true}
	}
	if k := len(st.inflight); k > 0 {
		b.prev = st.inflight[k-1]
	}
	st.inflight = append(st.inflight, b)
	st.sent = b.to
	more := st.sent < head
	st.mu.Unlock()
	r.acks.Go(func() { r.await(context.WithoutCancel(ctx), id, st, b) })
	return sched.Outcome{Cost: len(evs), More: more}
}

// waitRoom waits until fewer than Pipeline of the tenant's batches await
// their acks.
func (r *Relay) waitRoom(ctx context.Context, st *tstate) error {
	for {
		st.mu.Lock()
		for len(st.inflight) > 0 && isClosed(st.inflight[0].done) {
			st.inflight = st.inflight[1:]
		}
		if len(st.inflight) < r.opts.Pipeline {
			st.mu.Unlock()
			return nil
		}
		oldest := st.inflight[0]
		st.mu.Unlock()
		select {
		case <-oldest.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// await collects one batch's acks, after its predecessor's, and saves the
// tenant's position when all arrived; on a failure it rewinds the tenant
// to its last acknowledged event and queues it again after a pause.
func (r *Relay) await(ctx context.Context, id tenant.ID, st *tstate, b *batch) {
	ok := true
	if b.prev != nil {
		<-b.prev.done
		ok = b.prev.received
		b.prev = nil // else every batch would keep all the tenant's earlier ones alive
	}
	var failure error
	if ok {
		timer := time.NewTimer(r.opts.AckTimeout)
		select {
		case <-b.all:
			failure = b.failed()
		case <-timer.C:
			r.ackr.drop(b)
			failure = fmt.Errorf("no ack within %s", r.opts.AckTimeout)
		}
		timer.Stop()
		ok = failure == nil
	} else {
		r.ackr.drop(b) // answers arriving later are ignored
	}
	st.mu.Lock()
	if b.gen != st.gen {
		st.mu.Unlock()
		close(b.done)
		return
	}
	if !ok {
		if failure != nil {
			r.opts.Metrics.addError(id.String(), "ack")
			r.log.Warn("nats relay: batch not acknowledged; publishing again", slog.String("tenant", id.String()),
				slog.Int64("after", st.acked), slog.String("error", failure.Error()))
		}
		st.gen++
		st.sent, st.inflight = st.acked, nil
		st.mu.Unlock()
		close(b.done)
		time.AfterFunc(retryDelay, func() { r.sched.Ready(id) })
		return
	}
	b.received = true
	b.pb.recycle()
	b.pb, b.msgs = nil, nil
	r.opts.Metrics.addPublished(id.String(), b.n)
	st.acked = b.to
	// Save now if no later batch is on its way (its await saves), or if
	// the last save is saveEvery old: a tenant publishing without pause
	// saves a few times a second, not once a batch.
	later := len(st.inflight) > 0 && st.inflight[len(st.inflight)-1] != b
	due := !later || time.Since(st.savedAt) >= saveEvery
	st.mu.Unlock()
	close(b.done) // the next batch may go on while the position is saved
	if due {
		r.save(ctx, id, st)
	}
}

// saveEvery is how often a tenant whose batches follow each other without
// pause saves its position. A crash loses at most that much of it: those
// events are published again and JetStream drops them as duplicates.
const saveEvery = 250 * time.Millisecond

// save saves the tenant's acknowledged position in its own database, one
// save at a time: a save that finds a later one already done does
// nothing, so saves coalesce while the database is slow. A failure is
// counted and logged: the position is saved with a later batch, and a
// crash before then publishes the events again (JetStream drops them as
// duplicates within its window).
func (r *Relay) save(ctx context.Context, id tenant.ID, st *tstate) {
	st.saveMu.Lock()
	defer st.saveMu.Unlock()
	st.mu.Lock()
	seq, inc, saved := st.acked, st.inc, st.saved
	st.mu.Unlock()
	if seq <= saved {
		return
	}
	st.mu.Lock()
	st.savedAt = time.Now()
	st.mu.Unlock()
	if h := testHookBeforeSave; h != nil {
		h(id, seq)
	}
	// The tenant may have been deleted (and created again) since the
	// batch was read: never save an old incarnation's position in a new
	// one's database.
	if state, cur, err := r.opts.Tenants.Incarnation(ctx, id); err != nil || !cur.Equal(inc) || state == catalog.Deleting {
		return
	}
	tctx := tenant.WithID(ctx, id)
	err := r.opts.Store.Tx(tctx, func(tx *store.Tx) error {
		// Never backwards: another instance's relay may have saved a
		// later position (each publishes; JetStream drops the duplicates).
		if cur, err := tx.EventOffset(tctx, Consumer); err != nil || cur >= seq {
			return err
		}
		return tx.SetEventOffset(tctx, Consumer, seq)
	})
	if err != nil {
		r.opts.Metrics.addError(id.String(), "offset")
		r.log.Warn("nats relay: save offset failed", slog.String("tenant", id.String()), slog.Int64("seq", seq), slog.String("error", err.Error()))
		return
	}
	st.mu.Lock()
	if st.inc.Equal(inc) && seq > st.saved {
		st.saved = seq
	}
	st.mu.Unlock()
}

// fail counts and logs a tenant's failed step and retries it later.
func (r *Relay) fail(ctx context.Context, id tenant.ID, kind string, err error) sched.Outcome {
	if ctx.Err() != nil {
		return sched.Outcome{}
	}
	r.opts.Metrics.addError(id.String(), kind)
	r.log.Warn("nats relay: tenant step failed", slog.String("tenant", id.String()), slog.String("kind", kind), slog.String("error", err.Error()))
	return sched.Outcome{More: true, Delay: retryDelay}
}
