// Package health keeps per-tenant health for every active tenant in
// bounded memory, and raises anomaly flags when a tenant leaves its own
// baseline.
//
// Feed a Monitor one Sample per request from your own middleware (the
// tenant is known once the request is authenticated), run it, and read it:
//
//	m, _ := health.New(health.Options{Logger: logger, Registerer: reg})
//	go m.Run(ctx)                          // closes buckets, judges baselines, raises and clears flags
//	m.Observe(health.Sample{Tenant: id, Latency: d, Status: status, Throttled: status == 429})
//	r, ok := m.Tenant(id)                  // windows 1m/5m/15m, the last hour a minute apart, flags
//	top := m.Top(health.ByErrors, 10)      // the fleet's worst
//	m.Forget(id)                           // a deleted tenant; the same id later starts from zero
//
// # Windows
//
// Requests are counted in 10 s buckets (Bucket): requests, errors (status
// >= 500), throttled (refused by a rate limit or quota, 429) and queued
// (waited in an admission queue), with a fixed log-scale latency histogram
// per bucket whose quantiles are within 19% between 32 µs and 16.8 s. The
// 1m window slides by a bucket; the 5m and 15m windows and the hour of
// history by a minute.
//
// # Anomaly flags
//
// Each tenant has its own baseline per Signal (error_rate, latency_p99,
// request_rate), judged on every closed bucket: see Baseline for the EWMA,
// the robust spread, the warm-up, the floors and the hysteresis. Raised
// flags appear in Summary.Flags and Report, as the metric
// bulkhead_tenant_anomaly{tenant,signal} (Collector; bounded tenant
// labels), and as the log events "tenant anomaly raised" and "tenant
// anomaly cleared" with tenant, signal, value, baseline and spread. A
// flag's Value and Baseline are a share for error_rate, milliseconds for
// latency_p99 and requests per second for request_rate.
//
// # Cost
//
// Observe takes one stripe lock and allocates nothing for a tenant already
// tracked. A tenant costs StateBytes (about 3 KiB) plus its map entry;
// Options.MaxTenants caps them (least recently seen evicted first) and
// tenants idle for Options.IdleAfter are forgotten.
package health
