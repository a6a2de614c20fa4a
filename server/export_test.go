package server

import (
	"context"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ingress/catalogauth"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// GuardData exposes the data-plane gate (authenticate, settle the
// tenant, authorize, rate-limit, admit) around h, for benchmarks.
func (s *Server) GuardData(action string, h http.HandlerFunc) http.HandlerFunc {
	return s.gate.Data(action, h).ServeHTTP
}

// GuardAuthOnly is GuardData without the rate-limit and admission steps
// (authenticate, settle the tenant, authorize, audit): what GuardData
// measured before those steps moved into the gate, so that benchmarks
// compare like with like. It shares the server's catalog, JWT verifier
// (and their caches), policy and audit log.
func (s *Server) GuardAuthOnly(action string, h http.HandlerFunc) http.HandlerFunc {
	cfg := ingress.Config{
		Authenticator: catalogauth.All(s.catalog, s.opHash, s.verifier),
		Policy:        s.policy,
		Grants:        s.catalog,
		AlwaysAudit:   alwaysAudited,
		Logger:        s.log,
	}
	if s.audit != nil {
		cfg.Audit = s.audit
	}
	g, err := ingress.New(cfg)
	if err != nil {
		panic(err)
	}
	g.SetHTTPOptions(ingress.HTTPOptions{WriteError: s.writeError})
	return g.Data(action, h).ServeHTTP
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

// KeyNames returns the names of tenant id's encryption keys ("data:<id>",
// "index:<id>"), none if it has none.
func (s *Server) KeyNames(ctx context.Context, id tenant.ID) []string {
	info, err := s.enc.keys.Info(ctx, id)
	if err != nil {
		return nil
	}
	return info.Names()
}

// RouterForBench returns the server's store router, for benchmarks that
// load data faster than the HTTP API would.
func (s *Server) RouterForBench() *store.Router { return s.router }
