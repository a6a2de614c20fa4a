package telemetry

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Label values used instead of a tenant id.
const (
	// NoTenant labels requests that carry no tenant (control plane,
	// health checks, rejected credentials).
	NoTenant = "_none"
	// OtherTenant labels requests of tenants beyond the label budget.
	OtherTenant = "_other"
	// NoRoute labels requests that matched no route.
	NoRoute = "_unmatched"
)

// DefaultMaxTenants is the default tenant label budget.
const DefaultMaxTenants = 100

// MetricsOptions configures NewMetrics.
type MetricsOptions struct {
	// MaxTenants is how many distinct tenants get their own label value
	// (default DefaultMaxTenants); later tenants are counted as OtherTenant.
	MaxTenants int
}

// Metrics holds the HTTP metrics on a private registry. It is safe for
// concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	tenants  *labelBudget
}

// NewMetrics returns metrics registered on a new private registry, together
// with the Go runtime and process collectors.
func NewMetrics(opts MetricsOptions) *Metrics {
	max := opts.MaxTenants
	if max <= 0 {
		max = DefaultMaxTenants
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_http_requests_total",
			Help: "HTTP requests served, by tenant (bounded; see _other and _none), route pattern and status code.",
		}, []string{"tenant", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulkhead_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		tenants: &labelBudget{max: max, seen: make(map[string]struct{}, max)},
	}
	m.reg.MustRegister(
		m.requests,
		m.duration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry returns the private registry, for callers that add their own
// collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveRequest counts one request. tenant is the canonical tenant id or
// "" for none; route is a route pattern ("" for no match).
func (m *Metrics) ObserveRequest(tenant, route string, code int, d time.Duration) {
	if route == "" {
		route = NoRoute
	}
	m.requests.WithLabelValues(m.TenantLabel(tenant), route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// TenantLabel returns the label value for tenant: NoTenant for "", the id
// itself while the budget lasts (and forever after for ids already given
// one), OtherTenant once it is spent.
func (m *Metrics) TenantLabel(tenant string) string {
	if tenant == "" {
		return NoTenant
	}
	if m.tenants.admit(tenant) {
		return tenant
	}
	return OtherTenant
}

// labelBudget admits at most max distinct values.
type labelBudget struct {
	mu   sync.RWMutex
	max  int
	seen map[string]struct{} // guarded by mu
}

func (b *labelBudget) admit(v string) bool {
	b.mu.RLock()
	_, ok := b.seen[v]
	full := len(b.seen) >= b.max
	b.mu.RUnlock()
	if ok {
		return true
	}
	if full {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[v]; ok {
		return true
	}
	if len(b.seen) >= b.max {
		return false
	}
	b.seen[v] = struct{}{}
	return true
}
