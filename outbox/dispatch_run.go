package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Run handles tenants' events until ctx is done: those Notify names at
// once, and every tenant Tenants lists at start and every Poll. Tenants
// are taken in turn from one queue by Workers goroutines, a bounded batch
// per consumer per turn (see DispatcherOptions.Batch). Run returns nil
// when ctx is done and a handler running then has returned.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return errors.New("outbox: the Dispatcher runs already")
	}
	d.started = true
	d.mu.Unlock()
	var wg sync.WaitGroup
	for range d.opts.Workers {
		wg.Go(func() { d.work(ctx) })
	}
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			d.stopTimers()
			return nil
		case <-poll.C:
		}
		ids, err := d.opts.Tenants.ServingTenants(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("outbox dispatcher: list tenants", slog.String("error", err.Error()))
		}
		d.mu.Lock()
		for _, id := range ids {
			d.enqueue(id)
		}
		d.mu.Unlock()
		poll.Reset(d.opts.Poll)
	}
}

// work takes tenants from the queue until ctx is done.
func (d *Dispatcher) work(ctx context.Context) {
	for {
		id, ok := d.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-d.wake:
			}
			continue
		}
		d.turn(ctx, id)
	}
}

// next pops the queue's first tenant and marks it running.
func (d *Dispatcher) next() (tenant.ID, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.queue) == 0 {
		return tenant.ID{}, false
	}
	id := d.queue[0]
	d.queue[0] = tenant.ID{}
	d.queue = d.queue[1:]
	if len(d.queue) > 0 { // another worker may take the next one
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	st := d.state[id]
	st.queued, st.running = false, true
	return id, true
}

// turn gives every consumer not in backoff one batch of the tenant's
// events, then puts the tenant back at the end of the queue if some had
// more, or schedules its next retry.
func (d *Dispatcher) turn(ctx context.Context, id tenant.ID) {
	now := d.opts.Now()
	d.mu.Lock()
	st := d.state[id]
	var due []*consumer
	for _, c := range d.consumers {
		if r, ok := st.retry[c.name]; !ok || !now.Before(r.at) {
			due = append(due, c)
		}
	}
	d.mu.Unlock()
	more, gone := false, false
	type outcome struct {
		c   *consumer
		err error
	}
	var outs []outcome
	for _, c := range due {
		if ctx.Err() != nil {
			break
		}
		m, err := d.step(ctx, id, c)
		if errors.Is(err, store.ErrUnknownTenant) {
			gone = true // offboarded: nothing to do
			break
		}
		more = more || (m && err == nil)
		outs = append(outs, outcome{c, err})
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st.running = false
	if gone {
		d.forget(id, st)
		return
	}
	for _, o := range outs {
		if o.err == nil {
			delete(st.retry, o.c.name)
			continue
		}
		if ctx.Err() != nil {
			continue
		}
		if st.retry == nil {
			st.retry = map[string]retry{}
		}
		r := st.retry[o.c.name]
		r.attempts++
		r.at = d.opts.Now().Add(d.backoff(r.attempts))
		st.retry[o.c.name] = r
		d.opts.Metrics.failed(o.c.name)
		d.log.Warn("outbox consumer failed; retrying", slog.String("consumer", o.c.name), slog.String("tenant", id.String()),
			slog.Int("attempts", r.attempts), slog.String("error", o.err.Error()))
	}
	if more || st.again {
		st.again = false
		d.enqueue(id)
		return
	}
	if len(st.retry) == 0 {
		d.forget(id, st)
		return
	}
	d.schedule(id, st)
}

// backoff is the pause before attempt n+1: MinBackoff doubled n-1 times,
// at most MaxBackoff.
func (d *Dispatcher) backoff(n int) time.Duration {
	b := d.opts.MinBackoff
	for i := 1; i < n && b < d.opts.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, d.opts.MaxBackoff)
}

// schedule wakes the tenant at its earliest retry. d.mu is held.
func (d *Dispatcher) schedule(id tenant.ID, st *tenantState) {
	var at time.Time
	for _, r := range st.retry {
		if at.IsZero() || r.at.Before(at) {
			at = r.at
		}
	}
	if st.timer != nil {
		st.timer.Stop()
	}
	st.timer = time.AfterFunc(max(at.Sub(d.opts.Now()), 0), func() { d.Notify(id) })
}

// forget drops an idle tenant's state. d.mu is held.
func (d *Dispatcher) forget(id tenant.ID, st *tenantState) {
	if st.timer != nil {
		st.timer.Stop()
	}
	if !st.queued && !st.running {
		delete(d.state, id)
	}
}

func (d *Dispatcher) stopTimers() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, st := range d.state {
		if st.timer != nil {
			st.timer.Stop()
		}
	}
}

// Dispatch runs every consumer on tenant id's events at once, ignoring
// backoff, until each has caught up with the tenant's last event or
// failed, and returns the failures joined. It does what Run does for one
// tenant, synchronously: for tests, and for a team that wants an event
// handled before it answers.
func (d *Dispatcher) Dispatch(ctx context.Context, id tenant.ID) error {
	if id.IsZero() {
		return tenant.ErrMissing
	}
	d.mu.Lock()
	cs := append([]*consumer(nil), d.consumers...)
	d.mu.Unlock()
	var errs []error
	for _, c := range cs {
		for {
			more, err := d.step(ctx, id, c)
			if err != nil {
				d.opts.Metrics.failed(c.name)
				errs = append(errs, fmt.Errorf("consumer %s: %w", c.name, err))
				break
			}
			if !more {
				break
			}
		}
	}
	return errors.Join(errs...)
}
