package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/bulkhead-dev/bulkhead/identity"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ingress/catalogauth"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// alwaysAudited are actions audited even when they change nothing: they
// read or manage credentials or grants. Exports (record.export,
// tenant.export) are not here: the gate would hold the whole stream until
// its entry is written; their handler records them before the first byte.
var alwaysAudited = map[string]bool{
	"key.list": true, "grant.list": true, "issuer.manage": true, "support.manage": true,
	"key.manage": true, "analyst.manage": true,
}

// newGate builds the server's ingress from its parts, as a team would:
// the catalog's credentials (operator token, support agents, tenant users'
// JWTs, API keys), the policy, support grants, the rate limiter, admission
// and the audit log.
func (s *Server) newGate() (*ingress.Gate, error) {
	s.verifier = identity.NewVerifier(identity.VerifierOptions{
		Issuers:    s.catalog,
		HTTPClient: s.opts.JWKSClient,
		Now:        s.opts.Now,
	})
	cfg := ingress.Config{
		Authenticator: catalogauth.All(s.catalog, s.opHash, refusalLogger{s.verifier, s.log}),
		Policy:        s.policy,
		Grants:        s.catalog,
		Admission:     s.admission,
		AlwaysAudit:   alwaysAudited,
		Logger:        s.log,
		// The gate's span, and its steps' (package tracing).
		TracerProvider: s.opts.TracerProvider,
		TraceSteps:     s.opts.TraceSteps,
	}
	if s.audit != nil {
		cfg.Audit = s.audit
	}
	if s.limiter != nil {
		cfg.Limiter, cfg.Limits = s.limiter, s.rateLimits
		cfg.OnThrottle = func(id tenant.ID, reason string) {
			s.throttled.WithLabelValues(s.metrics.TenantLabel(id.String()), reason).Inc()
		}
	}
	g, err := ingress.New(cfg)
	if err != nil {
		return nil, err
	}
	g.SetHTTPOptions(ingress.HTTPOptions{WriteError: s.writeError})
	return g, nil
}

// record appends an entry to the audit log for what a handler did beyond
// what the gate records (grants, on the tenant's own chain). An error
// (503 audit_unavailable) must end the handler: the action is not answered
// as done without its entry.
func (s *Server) record(r *http.Request, chain string, p ingress.Principal, action, resource, decision string) error {
	return s.gate.Record(r.Context(), chain, p, action, resource, decision)
}

// operatorPrincipal is the operator as the audit log names it.
var operatorPrincipal = ingress.Principal{Kind: ingress.KindOperator, ID: "operator"}

// e adapts a handler that returns its error: the error is answered as a
// problem document (writeError), once, here.
func (s *Server) e(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// refusalLogger is the verifier of tenant users' JWTs as the gate uses it:
// each refusal is logged at debug with its reason (a bad signature, an
// unknown issuer, an expired token, a missing tenant claim...) and the
// request id, so an operator can tell why a login fails with
// --log-level debug. The token is never logged: the verifier's reasons do
// not hold it, and any part of it that one did would be cut out.
type refusalLogger struct {
	v   catalogauth.TokenVerifier
	log *slog.Logger
}

func (l refusalLogger) Verify(ctx context.Context, token string) (identity.User, error) {
	u, err := l.v.Verify(ctx, token)
	if err != nil && l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.LogAttrs(ctx, slog.LevelDebug, "jwt refused",
			slog.String("request_id", telemetry.InfoFrom(ctx).ID()),
			slog.String("reason", redactToken(err.Error(), token)))
	}
	return u, err
}

// redactToken removes token, and each of its parts long enough to be a
// secret, from s.
func redactToken(s, token string) string {
	s = strings.ReplaceAll(s, token, "[token]")
	for part := range strings.SplitSeq(token, ".") {
		if len(part) >= 8 {
			s = strings.ReplaceAll(s, part, "[token]")
		}
	}
	return s
}
