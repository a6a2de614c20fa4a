package outbox

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// OtherTenant is the tenant label value of every tenant when TrimMetrics
// has no label function (as telemetry.OtherTenant).
const OtherTenant = "_other"

// TrimMetrics counts a Trimmer's work in Prometheus metrics:
//
//	bulkhead_outbox_trimmed_events_total{tenant}
//	bulkhead_outbox_trim_runs_total{result="ok"|"error"}
//	bulkhead_outbox_trim_errors_total
//
// A nil *TrimMetrics counts nothing.
type TrimMetrics struct {
	trimmed *prometheus.CounterVec
	runs    *prometheus.CounterVec
	errors  prometheus.Counter
	label   func(string) string
}

// NewTrimMetrics registers the metrics on reg. label maps a tenant id to
// its label value and must bound how many there are (the server passes
// telemetry.Metrics.TenantLabel); nil labels every tenant OtherTenant.
func NewTrimMetrics(reg prometheus.Registerer, label func(id string) string) (*TrimMetrics, error) {
	if label == nil {
		label = func(string) string { return OtherTenant }
	}
	m := &TrimMetrics{
		trimmed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_outbox_trimmed_events_total",
			Help: "Events trimmed from tenants' outboxes by age or count, by tenant (bounded; see _other).",
		}, []string{"tenant"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_outbox_trim_runs_total",
			Help: "Outbox trimming runs, by result (error: the tenants could not be listed or some tenant's trim failed).",
		}, []string{"result"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulkhead_outbox_trim_errors_total",
			Help: "Outbox trim transactions that failed.",
		}),
		label: label,
	}
	for _, c := range []prometheus.Collector{m.trimmed, m.runs, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *TrimMetrics) add(id tenant.ID, n int64) {
	if m != nil && n > 0 {
		m.trimmed.WithLabelValues(m.label(id.String())).Add(float64(n))
	}
}

func (m *TrimMetrics) run(ok bool) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "error"
	}
	m.runs.WithLabelValues(result).Inc()
}

func (m *TrimMetrics) failed() {
	if m != nil {
		m.errors.Inc()
	}
}

// DispatchMetrics counts a Dispatcher's work in Prometheus metrics, by
// consumer name (the names a team registers, so they are bounded):
//
//	bulkhead_outbox_dispatched_events_total{consumer}
//	bulkhead_outbox_dispatch_errors_total{consumer}
//	bulkhead_outbox_dispatch_expired_total{consumer}
//
// A nil *DispatchMetrics counts nothing.
type DispatchMetrics struct {
	handledVec, errorsVec, expiredVec *prometheus.CounterVec
}

// NewDispatchMetrics registers the metrics on reg.
func NewDispatchMetrics(reg prometheus.Registerer) (*DispatchMetrics, error) {
	m := &DispatchMetrics{
		handledVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_outbox_dispatched_events_total",
			Help: "Events a consumer's handler handled successfully (a redelivered event counts again).",
		}, []string{"consumer"}),
		errorsVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_outbox_dispatch_errors_total",
			Help: "Failed turns of a consumer on a tenant's events (a handler error, or the outbox could not be read); each is retried with backoff.",
		}, []string{"consumer"}),
		expiredVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_outbox_dispatch_expired_total",
			Help: "Times a consumer's position fell behind a trim of a tenant's outbox (store.ErrEventsExpired).",
		}, []string{"consumer"}),
	}
	for _, c := range []prometheus.Collector{m.handledVec, m.errorsVec, m.expiredVec} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *DispatchMetrics) handled(consumer string, n int) {
	if m != nil && n > 0 {
		m.handledVec.WithLabelValues(consumer).Add(float64(n))
	}
}

func (m *DispatchMetrics) failed(consumer string) {
	if m != nil {
		m.errorsVec.WithLabelValues(consumer).Inc()
	}
}

func (m *DispatchMetrics) expired(consumer string) {
	if m != nil {
		m.expiredVec.WithLabelValues(consumer).Inc()
	}
}
