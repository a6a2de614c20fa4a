package health

import (
	"cmp"
	"slices"

	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxFlagLabels is how many flagged tenants bulkhead_tenant_anomaly
// names by default.
const DefaultMaxFlagLabels = 100

var (
	anomalyDesc = prometheus.NewDesc("bulkhead_tenant_anomaly",
		"1 while the tenant's anomaly flag for the signal is raised, 0 for its other signals; only flagged tenants appear (at most --health-max-flag-labels of them, the longest flagged first).",
		[]string{"tenant", "signal"}, nil)
	anomaliesDesc = prometheus.NewDesc("bulkhead_tenant_anomalies",
		"Anomaly flags raised now, by signal, over all tenants (named or not by bulkhead_tenant_anomaly).",
		[]string{"signal"}, nil)
)

// Collector publishes a Monitor's flags at scrape time:
//
//	bulkhead_tenant_anomaly{tenant,signal}  1 raised, 0 not (flagged tenants only)
//	bulkhead_tenant_anomalies{signal}       raised flags over all tenants
//
// At most MaxFlagLabels tenants are named (those flagged longest), so the
// first family has at most 3·MaxFlagLabels series however many tenants
// there are; a tenant whose flags clear leaves it.
type Collector struct{ m *Monitor }

var _ prometheus.Collector = Collector{}

// NewCollector returns the Collector of m (New registers it on
// Options.Registerer).
func NewCollector(m *Monitor) Collector { return Collector{m} }

// Describe implements prometheus.Collector.
func (c Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- anomalyDesc
	ch <- anomaliesDesc
}

type flagged struct {
	id     tenant.ID
	since  int64
	raised [3]bool
}

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	var all []flagged
	var total [3]int
	for i := range c.m.stripes {
		st := &c.m.stripes[i]
		st.mu.Lock()
		for id, t := range st.tenants {
			f := flagged{id: id, since: int64(^uint64(0) >> 1)}
			any := false
			for s := range t.det {
				if t.det[s].raised {
					f.raised[s], any = true, true
					f.since = min(f.since, t.det[s].since)
					total[s]++
				}
			}
			if any {
				all = append(all, f)
			}
		}
		st.mu.Unlock()
	}
	slices.SortFunc(all, func(a, b flagged) int {
		return cmp.Or(cmp.Compare(a.since, b.since), cmp.Compare(a.id.String(), b.id.String()))
	})
	for _, f := range all[:min(len(all), c.m.opts.MaxFlagLabels)] {
		for s, r := range f.raised {
			v := 0.0
			if r {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(anomalyDesc, prometheus.GaugeValue, v, f.id.String(), string(Signals[s]))
		}
	}
	for s, n := range total {
		ch <- prometheus.MustNewConstMetric(anomaliesDesc, prometheus.GaugeValue, float64(n), string(Signals[s]))
	}
}
