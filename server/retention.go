package server

import (
	"context"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/retention"
)

// DefaultRetentionInterval is the pause between two retention sweeps.
const DefaultRetentionInterval = retention.DefaultInterval

// retentionSweep runs package retention in the background: it purges the
// records tenants' retention rules let expire, through writeTx (so the
// usage gauges follow), audited on each tenant's chain.
type retentionSweep struct {
	*retention.Sweeper
	stop context.CancelFunc // nil when the sweep is off
	done chan struct{}
}

// initRetention makes the sweeper and starts it unless
// Options.RetentionInterval is negative.
func (s *Server) initRetention() error {
	if s.opts.RetentionInterval == 0 {
		s.opts.RetentionInterval = DefaultRetentionInterval
	}
	m, err := retention.NewMetrics(s.metrics.Registerer(), s.metrics.TenantLabel)
	if err != nil {
		return fmt.Errorf("retention metrics: %w", err)
	}
	now := s.opts.Now // nil: time.Now
	sw, err := retention.New(retention.Options{Rules: s.catalog, Store: retention.RunnerFunc(s.writeTx),
		Audit: s.audit, Now: now, Metrics: m, Logger: s.log})
	if err != nil {
		return err
	}
	s.retention = &retentionSweep{Sweeper: sw}
	if s.opts.RetentionInterval < 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := s.retention
	r.stop, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		sw.Run(ctx, s.opts.RetentionInterval)
	}()
	return nil
}

// stopRetention stops the background sweep and waits for it to return
// (a purge in flight rolls back). It is safe to call more than once.
func (s *Server) stopRetention() {
	if s.retention == nil || s.retention.stop == nil {
		return
	}
	s.retention.stop()
	<-s.retention.done
}
