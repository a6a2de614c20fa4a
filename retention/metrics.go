package retention

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// OtherTenant is the tenant label value of every tenant when Metrics has
// no TenantLabel function (as telemetry.OtherTenant).
const OtherTenant = "_other"

// Metrics counts a Sweeper's work in Prometheus metrics:
//
//	bulkhead_retention_purged_records_total{tenant}
//	bulkhead_retention_purged_bytes_total{tenant}
//	bulkhead_retention_runs_total{result="ok"|"error"}
//	bulkhead_retention_errors_total
//
// A nil *Metrics counts nothing.
type Metrics struct {
	records, bytes *prometheus.CounterVec
	runs           *prometheus.CounterVec
	errors         prometheus.Counter
	label          func(string) string
}

// NewMetrics registers the metrics on reg. label maps a tenant id to its
// label value and must bound how many there are (the server passes
// telemetry.Metrics.TenantLabel); nil labels every tenant OtherTenant.
func NewMetrics(reg prometheus.Registerer, label func(id string) string) (*Metrics, error) {
	if label == nil {
		label = func(string) string { return OtherTenant }
	}
	m := &Metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_retention_purged_records_total",
			Help: "Records purged by retention rules, by tenant (bounded; see _other).",
		}, []string{"tenant"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_retention_purged_bytes_total",
			Help: "Bytes of record data purged by retention rules, by tenant (bounded; see _other).",
		}, []string{"tenant"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_retention_runs_total",
			Help: "Retention sweeps run, by result (error: the rules could not be read or some tenant's purge failed).",
		}, []string{"result"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulkhead_retention_errors_total",
			Help: "Retention purge transactions or audit appends that failed.",
		}),
		label: label,
	}
	for _, c := range []prometheus.Collector{m.records, m.bytes, m.runs, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) purged(id tenant.ID, r store.PurgeResult) {
	if m == nil || r.Records == 0 {
		return
	}
	l := m.label(id.String())
	m.records.WithLabelValues(l).Add(float64(r.Records))
	m.bytes.WithLabelValues(l).Add(float64(r.Bytes))
}

func (m *Metrics) run(ok bool) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "error"
	}
	m.runs.WithLabelValues(result).Inc()
}

func (m *Metrics) failed() {
	if m != nil {
		m.errors.Inc()
	}
}
