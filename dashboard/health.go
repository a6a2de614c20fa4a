package dashboard

import (
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// These types are the per-tenant health the dashboard shows, in the shape
// of package health's (Summary, Window, Flag, Point, Report, Order), so
// that a *health.Monitor is a Health as it is.

// Signal names what a flag watches: "error_rate", "latency_p99",
// "request_rate".
type Signal = string

// Order is what Health.Top ranks by: "requests", "errors", "latency".
type Order = string

// Flag is a raised anomaly flag.
type Flag struct {
	Signal   Signal    `json:"signal"`
	Since    time.Time `json:"since"`
	Value    float64   `json:"value"`
	Baseline float64   `json:"baseline"`
	Spread   float64   `json:"spread"`
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

// Point is one step of a tenant's history, oldest first.
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
	Windows []Window `json:"windows"`
	Series  []Point  `json:"series"`
}

// Health is the per-tenant health the dashboard reads: package health's
// *Monitor, or anything that answers the same questions.
type Health interface {
	// Fleet returns every active tenant's summary.
	Fleet() []Summary
	// Top returns the n tenants highest by that order.
	Top(by Order, n int) []Summary
	// Tenant returns everything known of one tenant; false if it is not
	// active.
	Tenant(id tenant.ID) (Report, bool)
}
