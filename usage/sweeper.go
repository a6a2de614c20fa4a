package usage

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

// Defaults of a Sweeper.
const (
	// DefaultSweepInterval is the pause between two sweeps.
	DefaultSweepInterval = 60 * time.Second
	// DefaultSweepRate bounds the tenants a sweep reads per second, so
	// that a sweep over many tenants is a trickle next to the request load
	// rather than a burst of transactions.
	DefaultSweepRate = 100
)

const (
	// sweepPage is how many tenants a sweep lists at once.
	sweepPage = 100
	// readTimeout bounds one tenant's usage read in a sweep, so that one
	// stuck placement cannot stall the sweep of all the others.
	readTimeout = 10 * time.Second
)

// Tenant is a tenant as a Sweeper lists it.
type Tenant struct {
	ID tenant.ID
	// Serving is true for a tenant whose data the router serves (active
	// or suspended), false for one being provisioned or deleted: a sweep
	// removes those from the tracker instead of reading them.
	Serving bool
}

// Tenants lists, a page at a time, the tenants a Sweeper reads.
type Tenants interface {
	// Tenants returns up to limit tenants, sorted by ID, whose IDs sort
	// after after ("" for the first page). A page shorter than limit is
	// the last.
	Tenants(ctx context.Context, after string, limit int) ([]Tenant, error)
}

// TenantsFunc adapts a function to Tenants.
type TenantsFunc func(ctx context.Context, after string, limit int) ([]Tenant, error)

// Tenants implements Tenants.
func (f TenantsFunc) Tenants(ctx context.Context, after string, limit int) ([]Tenant, error) {
	return f(ctx, after, limit)
}

// SweeperOptions configures NewSweeper.
type SweeperOptions struct {
	// Router reads each tenant's usage (Read); required.
	Router Router
	// Tenants lists the tenants to read; required.
	Tenants Tenants
	// Rate bounds the tenants read per second (0: DefaultSweepRate;
	// negative: unpaced).
	Rate int
	// Logger receives a warning for a sweep that fails or cannot read some
	// tenants (nil: no logs).
	Logger *slog.Logger
}

// Sweeper feeds a Tracker with the usage of every serving tenant, read at
// a paced rate; once a sweep has walked every tenant it drops the tenants
// it did not list (offboarded by another instance, say). It is safe for
// concurrent use; sweeps do not overlap.
type Sweeper struct {
	t    *Tracker
	opts SweeperOptions
	log  *slog.Logger
	mu   sync.Mutex // held by a sweep
}

// NewSweeper returns a Sweeper that feeds t.
func NewSweeper(t *Tracker, opts SweeperOptions) *Sweeper {
	if opts.Rate == 0 {
		opts.Rate = DefaultSweepRate
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{t: t, opts: opts, log: log}
}

// Run sweeps at once (so that the gauges fill soon after a start), then
// every interval (DefaultSweepInterval if <= 0) after the end of the
// previous sweep, until ctx is done. A failed sweep is logged and the
// tracker keeps its last values.
func (s *Sweeper) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("usage sweep failed; the usage gauges keep their last values", slog.String("error", err.Error()))
		}
		timer.Reset(interval)
	}
}

// Sweep walks every tenant once, a page at a time, and reads each serving
// tenant's usage, at most Rate tenants a second. Each read runs in a
// context that names that tenant alone, through the router like any
// request, so a tenant's numbers can only come from its own placement. A
// tenant whose read fails keeps its last known usage; once the walk is
// complete the tenants not listed are dropped. It returns an error only
// if the walk could not complete.
func (s *Sweeper) Sweep(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	began := time.Now()
	start := s.t.Begin()
	var tick <-chan time.Time
	if s.opts.Rate > 0 {
		ticker := time.NewTicker(time.Second / time.Duration(s.opts.Rate))
		defer ticker.Stop()
		tick = ticker.C
	}
	var failed int
	var firstErr error
	after := ""
	for {
		page, err := s.opts.Tenants.Tenants(ctx, after, sweepPage)
		if err != nil {
			return fmt.Errorf("list tenants: %w", err)
		}
		for _, t := range page {
			if !t.Serving {
				s.t.Remove(t.ID) // provisioning or being deleted: nothing to show
				continue
			}
			if tick != nil {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-tick:
				}
			}
			mark := s.t.Begin()
			rctx, cancel := context.WithTimeout(tenant.WithID(ctx, t.ID), readTimeout)
			u, err := Read(rctx, s.opts.Router)
			cancel()
			switch {
			case err == nil:
				s.t.Observe(t.ID, u, mark)
			case errors.Is(err, store.ErrUnknownTenant):
				s.t.Remove(t.ID) // offboarded since the page was listed
			case ctx.Err() != nil:
				return ctx.Err()
			default:
				s.t.Touch(t.ID)
				if failed++; firstErr == nil {
					firstErr = fmt.Errorf("tenant %s: %w", t.ID, err)
				}
			}
		}
		if len(page) < sweepPage {
			break
		}
		after = page[len(page)-1].ID.String()
	}
	took := time.Since(began)
	s.t.prune(start, time.Now(), took)
	if failed > 0 {
		s.log.Warn("usage sweep could not read some tenants; their last known usage is kept",
			slog.Int("failed", failed), slog.String("first_error", firstErr.Error()))
	}
	s.log.Debug("usage sweep done", slog.Duration("took", took))
	return nil
}
