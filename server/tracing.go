package server

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tracing"
)

// traceHTTP names a request's span by the route the server recorded for
// its log and metrics (a pattern from the route table, never the raw
// path), and gives it the server's own request id.
var traceHTTP = tracing.HTTPOptions{
	Route:     func(r *http.Request) string { return telemetry.InfoFrom(r.Context()).Route() },
	RequestID: func(r *http.Request) string { return telemetry.InfoFrom(r.Context()).ID() },
}
