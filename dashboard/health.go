package dashboard

import (
	"github.com/bulkhead-dev/bulkhead/health"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// The per-tenant health the dashboard shows is package health's.
type (
	Flag    = health.Flag
	Window  = health.Window
	Point   = health.Point
	Summary = health.Summary
	Report  = health.Report
)

// Health is the per-tenant health the dashboard reads; *health.Monitor is
// one.
type Health interface {
	// Fleet returns every active tenant's summary.
	Fleet() []health.Summary
	// Top returns the n tenants highest by that order.
	Top(by health.Order, n int) []health.Summary
	// Tenant returns everything known of one tenant; false if it is not
	// active.
	Tenant(id tenant.ID) (health.Report, bool)
}

var _ Health = (*health.Monitor)(nil)
