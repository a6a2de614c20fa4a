package server

import (
	"context"
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// GuardData exposes the data-plane gate (authenticate, settle the
// tenant, authorize, rate-limit, admit) around h, for benchmarks.
func (s *Server) GuardData(action string, h http.HandlerFunc) http.HandlerFunc {
	return s.gate.Data(action, h).ServeHTTP
}

// AuthorizeForBench runs the policy engine alone.
func (s *Server) AuthorizeForBench(ctx context.Context, r policy.Request) (policy.Decision, error) {
	return s.policy.Authorize(ctx, r)
}

// SweepUsageNow runs one usage sweep at once, paced like the background
// sweeper, so that tests need not wait for Options.UsageSweepInterval.
func (s *Server) SweepUsageNow(ctx context.Context) error {
	return s.sweepUsage(ctx, time.Second/UsageSweepRate)
}

// ObserveUsage puts a usage into the usage tracker directly, as a request
// that read it would (for a tenant the catalog may not know).
func (s *Server) ObserveUsage(id tenant.ID, records, bytes int64) {
	s.tracked.observe(id, store.Usage{Records: records, Bytes: bytes})
}

// UsageSweeperStopped reports whether the background usage sweeper has
// returned (true if it never ran).
func (s *Server) UsageSweeperStopped() bool {
	if s.sweeper == nil {
		return true
	}
	select {
	case <-s.sweeper.done:
		return true
	default:
		return false
	}
}

// HoldAdmission takes an admission slot for id, as a request in flight
// would; call release to give it back.
func (s *Server) HoldAdmission(ctx context.Context, id tenant.ID) (release func(), err error) {
	return s.admission.Acquire(ctx, id)
}
