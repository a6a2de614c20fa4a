package server

import (
	"context"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/policy"
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

// HoldAdmission takes an admission slot for id, as a request in flight
// would; call release to give it back.
func (s *Server) HoldAdmission(ctx context.Context, id tenant.ID) (release func(), err error) {
	return s.admission.Acquire(ctx, id)
}
