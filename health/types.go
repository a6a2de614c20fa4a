package health

import (
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Sample is the outcome of one request of one tenant.
type Sample struct {
	Tenant    tenant.ID
	Latency   time.Duration
	Status    int  // HTTP status; >= 500 counts as an error
	Throttled bool // refused by a rate limit or quota (429)
	Queued    bool // waited in an admission queue before running
}

// Signal names a signal a tenant's anomaly flags watch.
type Signal string

// The signals, each judged against the tenant's own baseline.
const (
	// ErrorRate is the share of a bucket's requests that failed (status >= 500).
	ErrorRate Signal = "error_rate"
	// LatencyP99 is the 99th percentile of a bucket's latencies, in milliseconds.
	LatencyP99 Signal = "latency_p99"
	// RequestRate is a bucket's requests per second.
	RequestRate Signal = "request_rate"
)

// Signals lists every signal, in the order flags are reported.
var Signals = []Signal{ErrorRate, LatencyP99, RequestRate}

// Flag is a raised anomaly flag.
type Flag struct {
	Signal   Signal    `json:"signal"`
	Since    time.Time `json:"since"`
	Value    float64   `json:"value"`    // the current window's value
	Baseline float64   `json:"baseline"` // the tenant's own EWMA baseline
	Spread   float64   `json:"spread"`   // the robust deviation used
}

// Window is one sliding window's figures for a tenant.
type Window struct {
	Span      time.Duration `json:"-"`
	Seconds   float64       `json:"seconds"`
	Requests  int64         `json:"requests"`
	Errors    int64         `json:"errors"`
	Throttled int64         `json:"throttled"`
	Queued    int64         `json:"queued"`
	Rate      float64       `json:"rate_per_second"`
	ErrorRate float64       `json:"error_rate"`
	P50       time.Duration `json:"-"`
	P99       time.Duration `json:"-"`
	P50Ms     float64       `json:"p50_ms"`
	P99Ms     float64       `json:"p99_ms"`
}

// Point is one step of a tenant's history, for charts (oldest first).
type Point struct {
	At        time.Time `json:"at"`
	Requests  int64     `json:"requests"`
	Errors    int64     `json:"errors"`
	Throttled int64     `json:"throttled"`
	P99Ms     float64   `json:"p99_ms"`
}

// Summary is a tenant's last-minute window and its raised flags.
type Summary struct {
	Tenant tenant.ID `json:"tenant"`
	Window Window    `json:"window"`
	Flags  []Flag    `json:"flags"`
	Last   time.Time `json:"last_seen"`
}

// Report is everything the monitor holds on one tenant.
type Report struct {
	Summary
	Windows []Window `json:"windows"` // 1m, 5m, 15m
	Series  []Point  `json:"series"`  // the last hour, a point a minute
}

// Order says how Top ranks tenants.
type Order string

// The orders of Top, each over the last minute's window.
const (
	ByRequests Order = "requests" // most requests
	ByErrors   Order = "errors"   // most errors (status >= 500)
	ByLatency  Order = "latency"  // highest p99 latency
)
