// Package telemetry gives Bulkhead's HTTP layer its logs and metrics.
//
// Logs are JSON lines from log/slog. The request-log middleware writes one
// line per request with request_id, tenant, route (the route pattern, never
// the raw path), method, status and duration — never bodies, tokens,
// credential headers or record data.
//
// Metrics live on a private prometheus.Registry owned by a Metrics value
// (no package globals): bulkhead_http_requests_total{tenant,route,code} and
// bulkhead_http_request_duration_seconds{route}, plus the Go and process
// collectors. The tenant label is bounded: at most MaxTenants tenants hold
// a label value of their own at a time — the busiest by requests, found by
// a heavy-hitter sketch and re-ranked every RerankInterval — and their
// counters count exactly while they hold it; everything else is folded
// into "_other", and requests without a tenant are labelled "_none". A
// tenant that loses its label has its series deleted from every vector
// registered through Metrics.Registerer, so series do not pile up.
//
//	logger := telemetry.NewLogger(os.Stderr, slog.LevelInfo)
//	metrics := telemetry.NewMetrics(telemetry.MetricsOptions{})
//	h := telemetry.Middleware(logger, metrics)(mux)
//	// inside, after authentication and routing:
//	info := telemetry.InfoFrom(r.Context())
//	info.SetTenant("acme")
//	info.SetRoute("GET /v1/collections")
package telemetry
