package server

import (
	"context"
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/health"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// The per-tenant health the dashboard shows: a health.Monitor fed one
// sample per request that the gate settled on a tenant (data plane, and
// support agents acting as one); operator and unauthenticated requests
// name no tenant and are not counted. A 429 counts as throttled.

// initHealth makes the monitor; its anomaly metrics go on the server's
// registry and its flag events to the server log.
func (s *Server) initHealth() error {
	m, err := health.New(health.Options{Logger: s.log, Registerer: s.metrics.Registry(), Now: s.opts.Now})
	if err != nil {
		return err
	}
	s.monitor = m
	return nil
}

// HealthMonitor returns the server's per-tenant health monitor, for a
// team that embeds the server and wants to read or feed it.
func (s *Server) HealthMonitor() *health.Monitor { return s.monitor }

// feedHealth observes every request that names a tenant once it is
// answered. It sits inside the telemetry middleware, whose RequestInfo
// holds the tenant the gate settled.
func (s *Server) feedHealth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &telemetry.StatusRecorder{ResponseWriter: w}
		defer func() {
			info := telemetry.InfoFrom(r.Context())
			if unobserved[info.Route()] {
				return
			}
			id, err := tenant.Parse(info.Tenant())
			if err != nil {
				return // no tenant: not a tenant's request
			}
			st := rec.Status()
			s.monitor.Observe(health.Sample{Tenant: id, Latency: time.Since(start), Status: st,
				Throttled: st == http.StatusTooManyRequests})
		}()
		next.ServeHTTP(rec, r)
	})
}

// unobserved are routes whose duration is not a request's latency: an
// event stream stays open for as long as its client wants.
var unobserved = map[string]bool{"GET /v1/events": true}

// runHealth advances the monitor's windows until ctx ends.
func (s *Server) runHealth(ctx context.Context) { _ = s.monitor.Run(ctx) }

// forgetHealth drops an offboarded tenant: the same id created again
// starts from zero.
func (s *Server) forgetHealth(id tenant.ID) { s.monitor.Forget(id) }

// dashboardHealth is the per-tenant health the dashboard shows.
func (s *Server) dashboardHealth() *health.Monitor { return s.monitor }
