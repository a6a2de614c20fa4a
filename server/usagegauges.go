package server

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/usage"
)

// Defaults for the usage gauges' Options.
const (
	// DefaultUsageTopTenants is how many tenants get their own label value
	// on the usage gauges.
	DefaultUsageTopTenants = usage.DefaultTopTenants
	// DefaultUsageSweepInterval is the pause between two usage sweeps.
	DefaultUsageSweepInterval = usage.DefaultSweepInterval
)

// usageGauges wires package usage into the server: the tracker that the
// collector on the server's registry publishes, fed by every committed
// write (writeTx), by the requests that read usage anyway and by the
// sweeper, which runs in the background unless Options.UsageSweepInterval
// is negative.
type usageGauges struct {
	*usage.Tracker
	sweeper *usage.Sweeper
	// stop and done control the background sweep (nil when it is off).
	stop context.CancelFunc
	done chan struct{}
}

// remove forgets an offboarded tenant at once, not at the next sweep.
func (g *usageGauges) remove(id tenant.ID) { g.Remove(id) }

// initUsageGauges creates the tracker, registers its collector on the
// server's private registry and starts the sweeper unless
// Options.UsageSweepInterval is negative.
func (s *Server) initUsageGauges() {
	if s.opts.UsageTopTenants <= 0 {
		s.opts.UsageTopTenants = DefaultUsageTopTenants
	}
	if s.opts.UsageSweepInterval == 0 {
		s.opts.UsageSweepInterval = DefaultUsageSweepInterval
	}
	tr := usage.NewTracker(0)
	s.tracked = &usageGauges{Tracker: tr, sweeper: usage.NewSweeper(tr, usage.SweeperOptions{
		Router:  s.router,
		Tenants: usage.TenantsFunc(s.usageTenants),
		Logger:  s.log,
	})}
	s.metrics.Registry().MustRegister(usage.NewCollector(tr, s.opts.UsageTopTenants))
	if s.opts.UsageSweepInterval < 0 {
		return
	}
	// The sweeper outlives Open's ctx, which only bounds opening.
	ctx, cancel := context.WithCancel(context.Background())
	g := s.tracked
	g.stop, g.done = cancel, make(chan struct{})
	go func() {
		defer close(g.done)
		g.sweeper.Run(ctx, s.opts.UsageSweepInterval)
	}()
}

// usageTenants lists the catalog's tenants for the sweeper: active and
// suspended tenants are serving; the others are being provisioned or
// deleted.
func (s *Server) usageTenants(ctx context.Context, after string, limit int) ([]usage.Tenant, error) {
	page, err := s.catalog.ListTenants(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]usage.Tenant, len(page))
	for i, t := range page {
		out[i] = usage.Tenant{ID: t.ID, Serving: t.State == catalog.Active || t.State == catalog.Suspended}
	}
	return out, nil
}

// stopUsageSweeper stops the background sweep and waits for it to
// return. It is safe to call more than once and from several goroutines.
func (s *Server) stopUsageSweeper() {
	if s.tracked == nil || s.tracked.stop == nil {
		return
	}
	s.tracked.stop()
	<-s.tracked.done
}

// writeTx runs fn in a write transaction of the tenant in ctx, like
// router.Tx, and once it has committed gives the tenant's usage gauges the
// usage its writes left.
func (s *Server) writeTx(ctx context.Context, fn func(tx *store.Tx) error) error {
	return s.tracked.WriteTx(ctx, s.router, fn)
}
