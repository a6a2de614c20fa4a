package usage

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/telemetry"
)

// DefaultTopTenants is how many tenants get their own label value on the
// usage gauges by default.
const DefaultTopTenants = 20

// Collector publishes a Tracker at scrape time as
// bulkhead_tenant_usage_records and bulkhead_tenant_usage_bytes: one
// series per top tenant and one for telemetry.OtherTenant, so at most n+1
// label values whatever the number of tenants; plus the number of tenants
// tracked and, once a sweep has completed, when it ended and how long it
// took. It implements prometheus.Collector.
type Collector struct {
	t        *Tracker
	n        int
	records  *prometheus.Desc
	bytes    *prometheus.Desc
	tracked  *prometheus.Desc
	sweptAt  *prometheus.Desc
	sweepDur *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector of t that names the n biggest tenants
// (DefaultTopTenants if n <= 0).
func NewCollector(t *Tracker, n int) *Collector {
	if n <= 0 {
		n = DefaultTopTenants
	}
	return &Collector{
		t: t,
		n: n,
		records: prometheus.NewDesc("bulkhead_tenant_usage_records",
			fmt.Sprintf("Records stored, as last seen, for the %d biggest tenants by bytes; tenant=\"_other\" sums the other tracked tenants.", n),
			[]string{"tenant"}, nil),
		bytes: prometheus.NewDesc("bulkhead_tenant_usage_bytes",
			fmt.Sprintf("Bytes of record data stored (as the quota counts them), as last seen, for the %d biggest tenants; tenant=\"_other\" sums the other tracked tenants.", n),
			[]string{"tenant"}, nil),
		tracked: prometheus.NewDesc("bulkhead_tenant_usage_tracked",
			"Tenants whose storage usage the server tracks for the usage gauges.", nil, nil),
		sweptAt: prometheus.NewDesc("bulkhead_tenant_usage_last_sweep_timestamp_seconds",
			"When the last complete usage sweep over all tenants ended (Unix time).", nil, nil),
		sweepDur: prometheus.NewDesc("bulkhead_tenant_usage_sweep_seconds",
			"How long the last complete usage sweep over all tenants took.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.records
	ch <- c.bytes
	ch <- c.tracked
	ch <- c.sweptAt
	ch <- c.sweepDur
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.t.Snapshot(c.n)
	emit := func(label string, u store.Usage) {
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(u.Records), label)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(u.Bytes), label)
	}
	for _, r := range s.Top {
		emit(r.ID.String(), r.Usage)
	}
	emit(telemetry.OtherTenant, s.Other)
	ch <- prometheus.MustNewConstMetric(c.tracked, prometheus.GaugeValue, float64(s.Tracked))
	if !s.SweptAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.sweptAt, prometheus.GaugeValue, float64(s.SweptAt.UnixNano())/1e9)
		ch <- prometheus.MustNewConstMetric(c.sweepDur, prometheus.GaugeValue, s.SweepDuration.Seconds())
	}
}
