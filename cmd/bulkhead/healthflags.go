package main

import (
	"github.com/spf13/pflag"

	"github.com/bulkhead-dev/bulkhead/health"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/telemetry"
)

// healthFlags are serve's per-tenant health and metric label flags.
type healthFlags struct {
	maxTenants, maxFlagLabels, tenantLabels int
}

func (h *healthFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&h.maxTenants, "health-max-tenants", health.DefaultMaxTenants,
		"tenants whose health (windows, history, anomaly flags) is kept, about 3 KiB each; the least recently seen go first")
	fs.IntVar(&h.maxFlagLabels, "health-max-flag-labels", health.DefaultMaxFlagLabels,
		"flagged tenants named by the metric bulkhead_tenant_anomaly")
	fs.IntVar(&h.tenantLabels, "metrics-tenant-labels", telemetry.DefaultMaxTenants,
		"tenants with a metric label of their own at a time (the busiest, re-ranked every minute); the rest are _other")
}

func (h *healthFlags) apply(opts *server.Options) {
	opts.HealthMaxTenants, opts.HealthMaxFlagLabels, opts.MaxTenantLabels = h.maxTenants, h.maxFlagLabels, h.tenantLabels
}
