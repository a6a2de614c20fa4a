package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/health"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Per-tenant health (package health): every request a tenant credential
// makes is one Sample, taken when the request ends — its latency, status,
// whether it was throttled (429: a rate limit, a tenant's admission queue
// full, a quota) and whether it waited for admission. Requests without a
// tenant in the request log are not counted against any tenant: the
// control plane (the operator acts on a tenant but is not its load), a
// support agent acting as a tenant (read-only, not the tenant's own load),
// health checks and refused credentials.

// HealthView is what the health endpoints answer: the monitor's report on
// the tenant, and its quota use (storage usage against its limits).
type HealthView struct {
	health.Report
	// Limits are the tenant's effective limits.
	Limits *limits.Limits `json:"limits,omitempty"`
	// Usage is what the tenant stores, against Limits' quotas.
	Usage *Usage `json:"usage,omitempty"`
}

// newHealth builds the monitor, with its anomaly metrics on the server's
// registry and its log events in the server's log.
func (s *Server) newHealth() (*health.Monitor, error) {
	return health.New(health.Options{
		MaxTenants:    s.opts.HealthMaxTenants,
		MaxFlagLabels: s.opts.HealthMaxFlagLabels,
		Now:           s.opts.Now,
		Logger:        s.log,
		Registerer:    s.metrics.Registerer(),
	})
}

// observeHealth counts a finished request of a tenant in the monitor; the
// telemetry middleware calls it with the status and duration it measured.
func (s *Server) observeHealth(info *telemetry.RequestInfo, status int, d time.Duration) {
	id, err := tenant.Parse(info.Tenant())
	if err != nil || !healthCounts(info.Route(), status) {
		return // no tenant, or a served change-feed stream: not counted
	}
	s.health.Observe(health.Sample{Tenant: id, Latency: d, Status: status,
		Throttled: status == http.StatusTooManyRequests, Queued: info.Queued()})
}

// eventsRoute is the change feed's route: a stream that ran lasts as long
// as its client stays, which is no latency.
const eventsRoute = "GET /v1/events"

// healthCounts reports whether a request of route that ended with status
// counts in the tenant's health: every request but a change-feed stream
// that was served (a refused one, 4xx or 429, counts).
func healthCounts(route string, status int) bool {
	return route != eventsRoute || status != http.StatusOK
}

// forgetTenant drops a deleted tenant's health and metric labels: the same
// id created again starts from zero.
func (s *Server) forgetTenant(id tenant.ID) {
	s.health.Forget(id)
	s.metrics.ForgetTenant(id.String())
}

// adminHealth: GET /v1/admin/tenants/{id}/health (operator, tenant.read).
// An existing tenant with no traffic answers zeros; an unknown one is 404.
func (s *Server) adminHealth(w http.ResponseWriter, r *http.Request) error {
	id, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	return s.answerHealth(w, r, tenant.WithID(r.Context(), id), id)
}

// ownHealth: GET /v1/health (the tenant's own credential, health.read).
func (s *Server) ownHealth(w http.ResponseWriter, r *http.Request) error {
	id, err := tenant.FromContext(r.Context())
	if err != nil {
		return err
	}
	return s.answerHealth(w, r, r.Context(), id)
}

func (s *Server) answerHealth(w http.ResponseWriter, r *http.Request, ctx context.Context, id tenant.ID) error {
	rep, ok := s.health.Tenant(id)
	if !ok {
		rep = health.Zero(id, s.now())
	}
	v := HealthView{Report: rep}
	l, err := s.tenantLimits(ctx)
	switch {
	case err == nil:
		v.Limits = &l
	case !errors.Is(err, store.ErrUnknownTenant):
		return err
	}
	u, err := s.tenantUsage(ctx)
	switch {
	case err == nil:
		v.Usage = &u
	case !errors.Is(err, store.ErrUnknownTenant): // provisioning or being deleted: no usage
		return err
	}
	s.writeJSON(w, r, http.StatusOK, v)
	return nil
}
