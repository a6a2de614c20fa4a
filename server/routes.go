package server

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/telemetry"
)

// methods maps HTTP methods to the handlers of one path.
type methods map[string]http.HandlerFunc

// routes builds the API: every path is registered once on a ServeMux and
// dispatches on the method itself, so that a known path with a wrong
// method is a 405 problem (with Allow) and an unknown path a 404 problem.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	// Every v1 route names its policy action here: ctl for the control
	// plane (operators), data for the data plane and tenant self-service
	// (tenant credentials, support agents acting as a tenant). A handler
	// registered without one of them is not reachable with a credential.
	// The gate (package ingress) authenticates, settles the tenant,
	// authorizes, rate-limits and admits each request, and audits
	// denials, in that order.
	ctl, data := guard(s.gate.Control), guard(s.gate.Data)

	// Operations. /metrics needs no credential: the server listens on
	// loopback by default (127.0.0.1:8080), and whoever exposes it further
	// must put the scrape endpoint behind their own access control. It
	// holds tenant ids (bounded) but never record data.
	s.handle(mux, "/healthz", methods{http.MethodGet: s.healthz})
	s.handle(mux, "/readyz", methods{http.MethodGet: s.readyz})
	s.handle(mux, "/metrics", methods{http.MethodGet: s.metrics.Handler().ServeHTTP})

	// Control plane.
	s.handle(mux, "/v1/admin/tenants", methods{
		http.MethodGet:  ctl("tenant.list", s.listTenants),
		http.MethodPost: ctl("tenant.create", s.createTenant),
	})
	s.handle(mux, "/v1/admin/tenants/{id}", methods{
		http.MethodGet:    ctl("tenant.read", s.showTenant),
		http.MethodPatch:  ctl("tenant.update", s.updateTenant),
		http.MethodDelete: ctl("tenant.delete", s.deleteTenant),
	})
	s.handle(mux, "/v1/admin/tenants/{id}/suspend", methods{http.MethodPost: ctl("tenant.suspend", s.suspendTenant)})
	s.handle(mux, "/v1/admin/tenants/{id}/resume", methods{http.MethodPost: ctl("tenant.resume", s.resumeTenant)})
	s.handle(mux, "/v1/admin/tenants/{id}/keys", methods{
		http.MethodGet:  ctl("key.list", s.listKeys),
		http.MethodPost: ctl("key.create", s.createKey),
	})
	s.handle(mux, "/v1/admin/tenants/{id}/keys/{key_id}", methods{http.MethodDelete: ctl("key.revoke", s.revokeKey)})
	s.handle(mux, "/v1/admin/tenants/{id}/grants", methods{
		http.MethodGet:  ctl("grant.list", s.e(s.listGrants)),
		http.MethodPost: ctl("grant.create", s.e(s.createGrant)),
	})
	s.handle(mux, "/v1/admin/tenants/{id}/grants/{grant_id}", methods{http.MethodDelete: ctl("grant.revoke", s.e(s.revokeGrant))})
	s.handle(mux, "/v1/admin/tenants/{id}/issuers", methods{
		http.MethodGet: ctl("issuer.manage", s.getIssuers),
		http.MethodPut: ctl("issuer.manage", s.e(s.setIssuers)),
	})
	s.handle(mux, "/v1/admin/support-agents", methods{http.MethodPost: ctl("support.manage", s.e(s.createAgent))})
	s.handle(mux, "/v1/admin/support-agents/{agent_id}", methods{http.MethodDelete: ctl("support.manage", s.e(s.revokeAgent))})
	s.handle(mux, "/v1/admin/audit", methods{http.MethodGet: ctl("audit.read_all", s.e(s.adminAudit))})

	// Tenant self-service: the tenant comes from the credential.
	s.handle(mux, "/v1/keys", methods{
		http.MethodGet:  data("key.manage", s.e(s.listOwnKeys)),
		http.MethodPost: data("key.manage", s.e(s.createOwnKey)),
	})
	s.handle(mux, "/v1/keys/{key_id}", methods{http.MethodDelete: data("key.manage", s.e(s.revokeOwnKey))})
	s.handle(mux, "/v1/audit", methods{http.MethodGet: data("audit.read", s.e(s.tenantAudit))})
	s.handle(mux, "/v1/usage", methods{http.MethodGet: data("collection.list", s.usage)})

	// Data plane: the tenant comes from the credential (or a support
	// agent's live grant).
	s.handle(mux, "/v1/collections", methods{http.MethodGet: data("collection.list", s.e(s.listCollections))})
	s.handle(mux, "/v1/collections/{c}/records", methods{
		http.MethodGet:  data("record.read", s.e(s.listRecords)),
		http.MethodPost: data("record.write", s.e(s.createRecord)),
	})
	s.handle(mux, "/v1/collections/{c}/records/{id}", methods{
		http.MethodGet:    data("record.read", s.e(s.getRecord)),
		http.MethodPut:    data("record.write", s.e(s.putRecord)),
		http.MethodDelete: data("record.delete", s.e(s.deleteRecord)),
	})

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, newError(http.StatusNotFound, "route_not_found",
			"no such route; the v1 API lives under /v1/collections and /v1/admin/tenants"))
	})

	var h http.Handler = mux
	h = s.limitBody(h)
	h = s.recoverPanics(h)
	h = telemetry.Middleware(s.log, s.metrics)(h)
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
			e := newError(http.StatusMethodNotAllowed, "method_not_allowed", "use one of: "+allow)
			e.header = http.Header{"Allow": {allow}}
			writeProblem(w, e)
			return
		}
		info.SetRoute(m + " " + pattern)
		h(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports whether the catalog and every store shard answer.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
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
		writeProblem(w, newError(http.StatusServiceUnavailable, "unavailable", "a dependency of the server is not reachable; see the server log"))
		return
	}
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ready"})
}
