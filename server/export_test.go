package server

import (
	"context"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/policy"
)

// GuardData exposes the data-plane guard (authenticate, settle the tenant,
// authorize) around h, for benchmarks.
func (s *Server) GuardData(action string, h http.HandlerFunc) http.HandlerFunc {
	return s.data(action, h)
}

// AuthorizeForBench runs the policy engine alone.
func (s *Server) AuthorizeForBench(ctx context.Context, r policy.Request) (policy.Decision, error) {
	return s.policy.Authorize(ctx, r)
}
