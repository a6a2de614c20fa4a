package server

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/dashboard"
	"github.com/bulkhead-dev/bulkhead/health"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// newDashboard builds the operator dashboard (package dashboard) from the
// server's parts, as a team would: the catalog's tenants, the limits
// resolver, the usage tracker, per-tenant health, the audit log (its
// recent privileged actions, and the gate to record sign-ins), signed in
// with the operator token. Nil when Options.DisableDashboard.
func (s *Server) newDashboard() (*dashboard.Dashboard, error) {
	if s.opts.DisableDashboard {
		return nil, nil
	}
	cfg := dashboard.Config{
		OperatorHash: func() [32]byte { return s.opHash },
		Tenants:      s.catalog,
		Limits:       s.limits,
		Usage:        serverUsage{s},
		Audit:        s.audit,
		Recorder:     s.gate,
		Origin:       s.opts.DashboardOrigin,
		SecureCookie: s.opts.DashboardSecureCookie,
		Now:          s.opts.Now,
		Logger:       s.log,
	}
	if s.health != nil {
		cfg.Health = s.health
	}
	return dashboard.New(cfg)
}

// HealthMonitor returns the server's per-tenant health monitor, for a
// team that embeds the server and reads or feeds it (the dashboard's
// tests feed it for tenants they do not drive over HTTP).
func (s *Server) HealthMonitor() *health.Monitor { return s.health }

// serverUsage reads the usage gauges' tracker, which Open makes after the
// routes.
type serverUsage struct{ s *Server }

func (u serverUsage) Usage(id tenant.ID) (store.Usage, bool) {
	if u.s.tracked == nil {
		return store.Usage{}, false
	}
	return u.s.tracked.Usage(id)
}

// mountDashboard serves the dashboard at /dashboard and below.
func (s *Server) mountDashboard(mux *http.ServeMux) {
	if s.dash == nil {
		return
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		telemetry.InfoFrom(r.Context()).SetRoute(dashboard.DefaultPrefix)
		s.dash.ServeHTTP(w, r)
	})
	mux.Handle(dashboard.DefaultPrefix, h)
	mux.Handle(dashboard.DefaultPrefix+"/", h)
}
