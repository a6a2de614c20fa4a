package telemetry

import (
	"net/http"
	"slices"
	"strconv"
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
	// MaxTenants is how many tenants hold their own label value at a time
	// (default DefaultMaxTenants): the busiest, re-ranked every
	// RerankInterval; the others are counted as OtherTenant.
	MaxTenants int
	// RerankInterval is how often the labels are re-ranked (default
	// DefaultRerankInterval).
	RerankInterval time.Duration
	// Now is the clock of the re-ranking (time.Now if nil).
	Now func() time.Time
}

// Metrics holds the HTTP metrics on a private registry. It is safe for
// concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	tenants  *labels
}

// NewMetrics returns metrics registered on a new private registry, together
// with the Go runtime and process collectors.
func NewMetrics(opts MetricsOptions) *Metrics {
	max := opts.MaxTenants
	if max <= 0 {
		max = DefaultMaxTenants
	}
	if opts.RerankInterval <= 0 {
		opts.RerankInterval = DefaultRerankInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
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
		tenants: newLabels(max, opts.RerankInterval, opts.Now),
	}
	m.tenants.tracked = append(m.tenants.tracked, m.requests)
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

// Registerer returns a prometheus.Registerer on the private registry that
// also tracks every collector with a tenant label it registers (a
// TenantVec): when a tenant loses its label, its series are deleted from
// them. Register vectors whose tenant label comes from TenantLabel here.
func (m *Metrics) Registerer() prometheus.Registerer { return trackingRegisterer{m} }

// TrackTenantVec makes the label scheme delete a tenant's series from v
// when the tenant loses its label (Registerer does it for what it
// registers).
func (m *Metrics) TrackTenantVec(v TenantVec) {
	m.tenants.mu.Lock()
	m.tenants.tracked = append(m.tenants.tracked, v)
	m.tenants.mu.Unlock()
}

// ObserveRequest counts one request. tenant is the canonical tenant id or
// "" for none; route is a route pattern ("" for no match). The request
// counts towards the tenant's rank for a label of its own.
func (m *Metrics) ObserveRequest(tenant, route string, code int, d time.Duration) {
	if route == "" {
		route = NoRoute
	}
	if tenant != "" {
		m.tenants.count(tenant)
	}
	m.requests.WithLabelValues(m.TenantLabel(tenant), route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// TenantLabel returns the label value for tenant: NoTenant for "", the id
// itself while it holds a label (a tenant gets one at once while fewer
// than MaxTenants hold one, later only by re-ranking), OtherTenant
// otherwise.
func (m *Metrics) TenantLabel(tenant string) string {
	if tenant == "" {
		return NoTenant
	}
	if m.tenants.has(tenant) || m.tenants.admit(tenant) {
		return tenant
	}
	return OtherTenant
}

// Rerank re-ranks the tenant labels now (ObserveRequest does it every
// RerankInterval).
func (m *Metrics) Rerank() { m.tenants.rerank() }

// ForgetTenant takes tenant's label away and deletes its series (a deleted
// tenant: the same id created again starts from zero).
func (m *Metrics) ForgetTenant(tenant string) { m.tenants.forget(tenant) }

// LabelledTenants returns how many tenants hold a label of their own.
func (m *Metrics) LabelledTenants() int { return len(*m.tenants.current.Load()) }

type trackingRegisterer struct{ m *Metrics }

func (r trackingRegisterer) Register(c prometheus.Collector) error {
	if err := r.m.reg.Register(c); err != nil {
		return err
	}
	if v, ok := c.(TenantVec); ok {
		r.m.TrackTenantVec(v)
	}
	return nil
}

func (r trackingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r trackingRegisterer) Unregister(c prometheus.Collector) bool {
	r.m.tenants.mu.Lock()
	r.m.tenants.tracked = slices.DeleteFunc(r.m.tenants.tracked, func(v TenantVec) bool { return prometheus.Collector(v) == c })
	r.m.tenants.mu.Unlock()
	return r.m.reg.Unregister(c)
}
