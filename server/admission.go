package server

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/admission"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/prometheus/client_golang/prometheus"
)

// newAdmission builds the admission controller from the options and
// registers its metrics on the server's private registry:
// bulkhead_admission_rejected_total{tenant,reason} (tenant bounded, see
// _other), bulkhead_admission_queued, bulkhead_admission_tenant_queued
// {tenant} (the longest queues only) and bulkhead_admission_in_flight.
func newAdmission(opts Options, m *telemetry.Metrics) *admission.Controller {
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bulkhead_admission_rejected_total",
		Help: "Data-plane requests refused or abandoned by admission control, by tenant (bounded; see _other) and reason (queue_full, tenant_cap, saturated, cancelled).",
	}, []string{"tenant", "reason"})
	c := admission.New(admission.Options{
		Capacity: opts.AdmissionCapacity,
		Limits:   opts.AdmissionLimits,
		MaxWait:  opts.AdmissionMaxWait,
		FIFO:     opts.AdmissionFIFO,
		OnWait: func(ctx context.Context, _ tenant.ID) {
			telemetry.InfoFrom(ctx).SetQueued() // health counts the request as queued
		},
		OnReject: func(id tenant.ID, reason string) {
			rejected.WithLabelValues(m.TenantLabel(id.String()), reason).Inc()
		},
	})
	m.Registerer().MustRegister(rejected,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "bulkhead_admission_queued",
			Help: "Data-plane requests waiting for admission, all tenants.",
		}, func() float64 { return float64(c.Stats().Queued) }),
		queuedByTenant{c},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "bulkhead_admission_in_flight",
			Help: "Data-plane requests admitted and not yet finished.",
		}, func() float64 { return float64(c.Stats().InFlight) }),
	)
	return c
}

// queuedTopTenants is how many tenants bulkhead_admission_tenant_queued
// names; the waiting requests of all others are summed under "_other".
const queuedTopTenants = 20

var queuedByTenantDesc = prometheus.NewDesc("bulkhead_admission_tenant_queued",
	"Data-plane requests waiting for admission, for the tenants with the longest queues (at most 20; the rest summed under tenant=\"_other\").",
	[]string{"tenant"}, nil)

// queuedByTenant reports, at scrape time, the tenants with the longest
// admission queues: bounded label values however many tenants wait, and
// the tenant that floods is the one named.
type queuedByTenant struct{ c *admission.Controller }

func (q queuedByTenant) Describe(ch chan<- *prometheus.Desc) { ch <- queuedByTenantDesc }

func (q queuedByTenant) Collect(ch chan<- prometheus.Metric) {
	top, other := q.c.QueuedTop(queuedTopTenants)
	for _, t := range top {
		ch <- prometheus.MustNewConstMetric(queuedByTenantDesc, prometheus.GaugeValue, float64(t.Queued), t.Tenant.String())
	}
	ch <- prometheus.MustNewConstMetric(queuedByTenantDesc, prometheus.GaugeValue, float64(other), "_other")
}
