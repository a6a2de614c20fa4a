package server

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// SweepUsageNow runs one usage sweep at once, paced like the background
// sweeper, so that tests need not wait for Options.UsageSweepInterval.
func (s *Server) SweepUsageNow(ctx context.Context) error {
	return s.tracked.sweeper.Sweep(ctx)
}

// ObserveUsage puts a usage into the usage tracker directly, as a request
// that read it would (for a tenant the catalog may not know).
func (s *Server) ObserveUsage(id tenant.ID, records, bytes int64) {
	s.tracked.Observe(id, store.Usage{Records: records, Bytes: bytes}, s.tracked.Begin())
}

// UsageSweeperStopped reports whether the background usage sweeper has
// returned (true if it never ran).
func (s *Server) UsageSweeperStopped() bool {
	if s.tracked == nil || s.tracked.done == nil {
		return true
	}
	select {
	case <-s.tracked.done:
		return true
	default:
		return false
	}
}
