package relay

import "github.com/prometheus/client_golang/prometheus"

// OtherTenant is the tenant label of every tenant when Metrics has no
// label function (as telemetry.OtherTenant).
const OtherTenant = "_other"

// Metrics counts a Relay's work:
//
//	bulkhead_relay_published_total{tenant}   events JetStream acknowledged
//	bulkhead_relay_errors_total{tenant,kind} kind: read, publish, ack, offset, catalog
//	bulkhead_relay_expired_total{tenant}     events trimmed before the relay published them (skipped)
//	bulkhead_relay_lag{tenant}               events committed but not yet acknowledged, as last seen
//
// The tenant label is bounded by the label function. A nil *Metrics
// counts nothing.
type Metrics struct {
	published *prometheus.CounterVec
	errors    *prometheus.CounterVec
	expired   *prometheus.CounterVec
	lag       *prometheus.GaugeVec
	label     func(string) string
}

// NewMetrics registers the metrics on reg. label maps a tenant id to its
// label value and must bound how many there are (the server passes
// telemetry.Metrics.TenantLabel); nil labels every tenant OtherTenant.
func NewMetrics(reg prometheus.Registerer, label func(id string) string) (*Metrics, error) {
	if label == nil {
		label = func(string) string { return OtherTenant }
	}
	m := &Metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_relay_published_total",
			Help: "Outbox events the NATS relay published and JetStream acknowledged, by tenant (bounded; see _other).",
		}, []string{"tenant"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_relay_errors_total",
			Help: "NATS relay failures by tenant and kind (read, publish, ack, offset, catalog); the tenant's events are retried.",
		}, []string{"tenant", "kind"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_relay_expired_total",
			Help: "Events trimmed from a tenant's outbox before the NATS relay published them; the relay skipped ahead over them.",
		}, []string{"tenant"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulkhead_relay_lag",
			Help: "Events a tenant committed that JetStream has not acknowledged yet, as the relay last saw them (bounded; see _other).",
		}, []string{"tenant"}),
		label: label,
	}
	for _, c := range []prometheus.Collector{m.published, m.errors, m.expired, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) addPublished(id string, n int) {
	if m != nil && n > 0 {
		m.published.WithLabelValues(m.label(id)).Add(float64(n))
	}
}

func (m *Metrics) addError(id, kind string) {
	if m != nil {
		m.errors.WithLabelValues(m.label(id), kind).Inc()
	}
}

func (m *Metrics) addExpired(id string, n int64) {
	if m != nil && n > 0 {
		m.expired.WithLabelValues(m.label(id)).Add(float64(n))
	}
}

// setLag sets the tenant's lag. Tenants sharing the _other label would
// overwrite each other's value, so theirs is not set: the gauge shows the
// labelled tenants only.
func (m *Metrics) setLag(id string, n int64) {
	if m == nil {
		return
	}
	if l := m.label(id); l == id {
		m.lag.WithLabelValues(l).Set(float64(max(n, 0)))
	}
}
