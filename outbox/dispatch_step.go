package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// step hands consumer c one batch of tenant id's events after its saved
// position and saves the position past those it handled. It reports
// whether the batch was full (more may follow).
func (d *Dispatcher) step(ctx context.Context, id tenant.ID, c *consumer) (more bool, err error) {
	tctx := tenant.WithID(ctx, id)
	var off, head int64
	var evs []store.Event
	err = d.opts.Store.ReadTx(tctx, func(tx *store.Tx) error {
		var err error
		if off, err = tx.EventOffset(tctx, c.name); err != nil {
			return err
		}
		evs, head, err = tx.Events(tctx, off, d.opts.Batch, c.collections)
		return err
	})
	if errors.Is(err, store.ErrEventsExpired) {
		return d.expired(tctx, c, err)
	}
	if err != nil {
		return false, fmt.Errorf("read events: %w", err)
	}
	for _, ev := range evs {
		if ev.Tenant != id {
			return false, fmt.Errorf("%w: event %d of %s's outbox", ErrForeignEvent, ev.Seq, id)
		}
	}
	done, handled := off, 0
	var herr error
	for _, ev := range evs {
		if ctx.Err() != nil {
			herr = ctx.Err()
			break
		}
		// The context is the event's tenant's, re-entered from the event
		// itself (DESIGN invariant 3).
		hctx := tenant.WithID(ctx, ev.Tenant)
		if c.txh != nil {
			err = d.opts.Store.Tx(hctx, func(tx *store.Tx) error {
				cur, err := tx.EventOffset(hctx, c.name)
				if err != nil || cur >= ev.Seq {
					return err // handled by another dispatcher meanwhile
				}
				if err := call(func() error { return c.txh(hctx, tx, ev) }); err != nil {
					return err
				}
				return tx.SetEventOffset(hctx, c.name, ev.Seq)
			})
		} else {
			err = call(func() error { return c.h(hctx, ev) })
		}
		if err != nil {
			herr = fmt.Errorf("event %d: %w", ev.Seq, err)
			break
		}
		done = ev.Seq
		handled++
	}
	d.opts.Metrics.handled(c.name, handled)
	if herr == nil && len(evs) < d.opts.Batch {
		done = max(done, head) // seen everything up to head (the rest is other collections)
	}
	if done > off && (c.txh == nil || done > lastSeq(evs, handled)) {
		if err := d.advance(tctx, c.name, done); err != nil {
			return false, errors.Join(herr, err)
		}
	}
	return herr == nil && len(evs) == d.opts.Batch, herr
}

// lastSeq is the Seq of the last handled event (0 if none).
func lastSeq(evs []store.Event, handled int) int64 {
	if handled == 0 {
		return 0
	}
	return evs[handled-1].Seq
}

// advance saves consumer's position as seq unless it is already there or
// further (another dispatcher's work): a position never moves back.
func (d *Dispatcher) advance(tctx context.Context, consumer string, seq int64) error {
	err := d.opts.Store.Tx(tctx, func(tx *store.Tx) error {
		cur, err := tx.EventOffset(tctx, consumer)
		if err != nil || cur >= seq {
			return err
		}
		return tx.SetEventOffset(tctx, consumer, seq)
	})
	if err != nil {
		return fmt.Errorf("save position %d: %w", seq, err)
	}
	return nil
}

// expired handles a position that fell behind a trim: Expired (or a log)
// and then the position moves to just before the oldest event kept.
func (d *Dispatcher) expired(tctx context.Context, c *consumer, cause error) (bool, error) {
	d.opts.Metrics.expired(c.name)
	id, _ := tenant.FromContext(tctx)
	if d.opts.Expired != nil {
		if err := call(func() error { return d.opts.Expired(tctx, c.name) }); err != nil {
			return false, fmt.Errorf("catch up after trimmed events: %w", err)
		}
	} else {
		d.log.Error("outbox consumer fell behind a trim; skipping to the oldest event kept (set DispatcherOptions.Expired to catch up instead)",
			slog.String("consumer", c.name), slog.String("tenant", id.String()), slog.String("error", cause.Error()))
	}
	var oldest int64
	if err := d.opts.Store.ReadTx(tctx, func(tx *store.Tx) error {
		var err error
		oldest, _, err = tx.EventBounds(tctx)
		return err
	}); err != nil {
		return false, fmt.Errorf("read outbox bounds: %w", err)
	}
	return true, d.advance(tctx, c.name, oldest-1)
}

// call runs fn, turning a panic into an error: a handler's bug fails its
// event (retried), not the process.
func call(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return fn()
}
