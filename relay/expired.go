package relay

import (
	"context"
	"errors"
	"log/slog"

	"github.com/bulkhead-dev/bulkhead/sched"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// skipAhead handles a tenant whose events after the relay's position were
// trimmed from the outbox before the relay published them (the outbox
// keeps events for a bounded time or count; see store.TrimEvents). They
// cannot be published any more: the relay logs it, counts them in
// bulkhead_relay_expired_total, and goes on from the oldest event the
// outbox still holds. Consumers see a gap in Bulkhead-Seq and know to
// resynchronise from the records.
func (r *Relay) skipAhead(ctx context.Context, id tenant.ID, st *tstate, gen int, after int64) sched.Outcome {
	to, err := r.oldestPosition(ctx, after)
	if err != nil {
		return r.fail(ctx, id, "read", err)
	}
	st.mu.Lock()
	if st.gen != gen || st.sent != after {
		st.mu.Unlock()
		return sched.Outcome{More: true}
	}
	r.opts.Metrics.addExpired(id.String(), to-after)
	r.log.Warn("nats relay: events trimmed before they were published; skipping ahead", slog.String("tenant", id.String()),
		slog.Int64("after", after), slog.Int64("resume_after", to), slog.Int64("skipped", to-after))
	idle := len(st.inflight) == 0
	if idle {
		st.acked = to
	}
	st.sent = to // with batches in flight, the position is saved with the next batch's acks
	st.mu.Unlock()
	if idle {
		r.save(ctx, id, st)
	}
	return sched.Outcome{Cost: 1, More: true}
}

// oldestPosition finds the lowest position after after from which the
// tenant's outbox can be read (the oldest kept event's Seq - 1): an
// exponential then binary search over cheap reads of one event.
func (r *Relay) oldestPosition(ctx context.Context, after int64) (int64, error) {
	readable := func(pos int64) (bool, error) {
		err := r.opts.Store.ReadTx(ctx, func(tx *store.Tx) error {
			_, _, err := tx.Events(ctx, pos, 1, nil)
			return err
		})
		switch {
		case err == nil, errors.Is(err, store.ErrEventPosition):
			return true, nil // at or past the head: nothing before it is missing
		case errors.Is(err, store.ErrEventsExpired):
			return false, nil
		default:
			return false, err
		}
	}
	lo, step := after, int64(1) // lo is not readable
	hi := lo + step
	for {
		ok, err := readable(hi)
		if err != nil {
			return 0, err
		}
		if ok {
			break
		}
		lo, step = hi, step*2
		hi = lo + step
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := readable(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}
