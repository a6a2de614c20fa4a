package events

import (
	"github.com/prometheus/client_golang/prometheus"
)

// OtherTenant is the tenant label of every tenant when Metrics has no
// label function (as telemetry.OtherTenant).
const OtherTenant = "_other"

// Metrics counts streams in Prometheus metrics:
//
//	bulkhead_event_streams{tenant}                 open streams
//	bulkhead_events_delivered_total{tenant}        events written to streams
//	bulkhead_event_streams_ended_total{reason}     streams ended, by why
//
// The reasons are "client" (it went away), "write" (a write failed or
// timed out: a stuck client), "expired" (it fell behind the outbox's
// trimming), "tenant" (the tenant or the credential went away),
// "shutdown" (Hub.Shutdown) and "error". A nil *Metrics counts nothing.
type Metrics struct {
	open      *prometheus.GaugeVec
	delivered *prometheus.CounterVec
	ended     *prometheus.CounterVec
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
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulkhead_event_streams",
			Help: "Open change-feed streams (GET /v1/events), by tenant (bounded; see _other).",
		}, []string{"tenant"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_events_delivered_total",
			Help: "Events written to change-feed streams, by tenant (bounded; see _other).",
		}, []string{"tenant"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_event_streams_ended_total",
			Help: "Change-feed streams ended, by reason: client, write (stuck or failed client), expired, tenant, shutdown, error.",
		}, []string{"reason"}),
		label: label,
	}
	for _, c := range []prometheus.Collector{m.open, m.delivered, m.ended} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// streamMetrics are one stream's series, resolved once.
type streamMetrics struct {
	m         *Metrics
	open      prometheus.Gauge
	delivered prometheus.Counter
}

func (m *Metrics) stream(id string) streamMetrics {
	if m == nil {
		return streamMetrics{}
	}
	l := m.label(id)
	sm := streamMetrics{m: m, open: m.open.WithLabelValues(l), delivered: m.delivered.WithLabelValues(l)}
	sm.open.Inc()
	return sm
}

func (sm streamMetrics) deliver(n int) {
	if sm.m != nil && n > 0 {
		sm.delivered.Add(float64(n))
	}
}

func (sm streamMetrics) end(reason string) {
	if sm.m == nil {
		return
	}
	sm.open.Dec()
	sm.m.ended.WithLabelValues(reason).Inc()
}
