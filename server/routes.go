package server

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tracing"
)

// plane says who may reach a route.
type plane int

const (
	ops     plane = iota // no credential: health, readiness, metrics
	control              // operators only (the control plane)
	data                 // tenant credentials, and support agents acting as a tenant
	analyst              // analysts only: aggregates across tenants (package analytics)
)

// route is one entry of the API: a method and a path, who may reach it
// (plane) under which policy action, and its handler. Every v1 route names
// its action: a handler not in the table is not reachable.
type route struct {
	method, pattern string
	plane           plane
	action          string
	h               func(http.ResponseWriter, *http.Request) error
}

// table is the API. /metrics needs no credential: the server listens on
// loopback by default (127.0.0.1:8080), and whoever exposes it further must
// put the scrape endpoint behind their own access control. It holds tenant
// ids (bounded) but never record data. Tenant self-service and the data
// plane take the tenant from the credential (or a support agent's live
// grant), never from the path.
func (s *Server) table() []route {
	G, P, U, D, A := http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch
	metrics := s.metrics.Handler()
	t := []route{
		{G, "/healthz", ops, "", s.healthz},
		{G, "/readyz", ops, "", s.readyz},
		{G, "/metrics", ops, "", func(w http.ResponseWriter, r *http.Request) error { metrics.ServeHTTP(w, r); return nil }},

		{G, "/v1/admin/tenants", control, "tenant.list", s.listTenants},
		{P, "/v1/admin/tenants", control, "tenant.create", s.createTenant},
		{G, "/v1/admin/tenants/{id}", control, "tenant.read", s.showTenant},
		{A, "/v1/admin/tenants/{id}", control, "tenant.update", s.updateTenant},
		{D, "/v1/admin/tenants/{id}", control, "tenant.delete", s.deleteTenant},
		{P, "/v1/admin/tenants/{id}/suspend", control, "tenant.suspend", s.suspendTenant},
		{P, "/v1/admin/tenants/{id}/resume", control, "tenant.resume", s.resumeTenant},
		{G, "/v1/admin/tenants/{id}/export", control, "tenant.export", s.exportTenant},
		{G, "/v1/admin/tenants/{id}/health", control, "tenant.read", s.adminHealth},
		{P, "/v1/admin/tenants/{id}/offboard", control, "tenant.delete", s.offboardTenant},
		{G, "/v1/admin/receipt-key", control, "receipt.key", s.receiptKey},
		{G, "/v1/admin/tenants/{id}/keys", control, "key.list", s.listKeys},
		{P, "/v1/admin/tenants/{id}/keys", control, "key.create", s.createKey},
		{D, "/v1/admin/tenants/{id}/keys/{key_id}", control, "key.revoke", s.revokeKey},
		{G, "/v1/admin/tenants/{id}/grants", control, "grant.list", s.listGrants},
		{P, "/v1/admin/tenants/{id}/grants", control, "grant.create", s.createGrant},
		{D, "/v1/admin/tenants/{id}/grants/{grant_id}", control, "grant.revoke", s.revokeGrant},
		{G, "/v1/admin/tenants/{id}/issuers", control, "issuer.manage", s.getIssuers},
		{U, "/v1/admin/tenants/{id}/issuers", control, "issuer.manage", s.setIssuers},
		{G, "/v1/admin/support-agents", control, "support.manage", s.listAgents},
		{P, "/v1/admin/support-agents", control, "support.manage", s.createAgent},
		{D, "/v1/admin/support-agents/{agent_id}", control, "support.manage", s.revokeAgent},
		{G, "/v1/admin/audit", control, "audit.read_all", s.adminAudit},
		{P, "/v1/admin/tenants/{id}/encryption/rotate", control, "keys.manage", s.rotateTenantKey},
		{P, "/v1/admin/keyring/rotate", control, "keys.manage", s.rotateKeyring},
		{G, "/v1/admin/jobs/{job}", control, "job.read", s.showJob},
		{G, "/v1/admin/analysts", control, "analyst.manage", s.listAnalysts},
		{P, "/v1/admin/analysts", control, "analyst.manage", s.createAnalyst},
		{D, "/v1/admin/analysts/{analyst_id}", control, "analyst.manage", s.revokeAnalyst},
		{P, "/v1/analytics/query", analyst, "analytics.query", s.analyticsQuery},

		{G, "/v1/keys", data, "key.manage", s.listOwnKeys},
		{P, "/v1/keys", data, "key.manage", s.createOwnKey},
		{D, "/v1/keys/{key_id}", data, "key.manage", s.revokeOwnKey},
		{G, "/v1/audit", data, "audit.read", s.tenantAudit},
		{G, "/v1/usage", data, "collection.list", s.usage},
		{G, "/v1/export", data, "record.export", s.exportOwn},
		{G, "/v1/events", data, "event.read", s.streamEvents},
		{G, "/v1/health", data, "health.read", s.ownHealth},
	}
	// The records: /v1/collections and below (package recordapi).
	for _, rt := range s.records.Routes() {
		t = append(t, route{rt.Method, rt.Pattern, data, rt.Action, rt.Handler})
	}
	return t
}

// methods maps HTTP methods to the handlers of one path.
type methods map[string]http.HandlerFunc

// routes builds the API from the table: every path is registered once on
// a ServeMux and dispatches on the method itself, so that a known path
// with a wrong method is a 405 problem (with Allow) and an unknown path a
// 404 problem. The gate (package ingress) guards every control and data
// route: it authenticates, settles the tenant, authorizes, rate-limits and
// admits each request, and audits denials, in that order; one adapter
// answers a handler's error.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	paths := map[string]methods{}
	var order []string
	for _, rt := range s.table() {
		var h http.Handler = s.e(rt.h)
		switch rt.plane {
		case control:
			h = s.gate.Control(rt.action, h)
		case data:
			h = s.gate.Data(rt.action, h)
		case analyst:
			h = s.gate.Analytics(rt.action, h)
		}
		if paths[rt.pattern] == nil {
			paths[rt.pattern] = methods{}
			order = append(order, rt.pattern)
		}
		paths[rt.pattern][rt.method] = h.ServeHTTP
	}
	for _, p := range order {
		s.handle(mux, p, paths[p])
	}

	s.mountDashboard(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		tracing.RecordProblem(r.Context(), "route_not_found")
		writeProblem(w, newError(http.StatusNotFound, "route_not_found",
			"no such route; the v1 API lives under /v1/collections and /v1/admin/tenants"))
	})

	var h http.Handler = mux
	h = s.limitBody(h)
	h = s.recoverPanics(h)
	h = telemetry.Middleware(s.log, s.metrics, s.observeHealth)(h)
	h = tracing.Middleware(s.opts.TracerProvider, traceHTTP)(h)
	h = requestID(h)
	return h
}

// handle registers pattern (a path, no method) with its method table. The
// route recorded for logs and metrics is "<METHOD> <pattern>", or the bare
// pattern for a refused method. HEAD is served by the GET handler.
func (s *Server) handle(mux *http.ServeMux, pattern string, ms methods) {
	allowed := make([]string, 0, len(ms)+1)
	for m := range ms {
		allowed = append(allowed, m)
	}
	if ms[http.MethodGet] != nil {
		allowed = append(allowed, http.MethodHead)
	}
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")

	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		info := telemetry.InfoFrom(r.Context())
		m := r.Method
		h := ms[m]
		if h == nil && m == http.MethodHead {
			h = ms[http.MethodGet]
		}
		if h == nil {
			info.SetRoute(pattern)
			tracing.RecordProblem(r.Context(), "method_not_allowed")
			writeProblem(w, newError(http.StatusMethodNotAllowed, "method_not_allowed", "use one of: "+allow).
				WithHeader("Allow", allow))
			return
		}
		info.SetRoute(m + " " + pattern)
		h(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz reports whether the catalog and every store shard answer.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	err := s.catalog.Ping(ctx)
	if err == nil {
		err = s.router.Ping(ctx)
	}
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "not ready",
			slog.String("request_id", telemetry.InfoFrom(ctx).ID()),
			slog.String("error", err.Error()))
		return newError(http.StatusServiceUnavailable, "unavailable", "a dependency of the server is not reachable; see the server log")
	}
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
