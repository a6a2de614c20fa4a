// Package limits resolves each tenant's effective limits: the defaults of
// its tier, then the per-tenant overrides stored in the catalog, then an
// optional limits file that is reloaded on change.
package limits

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Limits are a tenant's effective limits. Zero means "no limit" only where
// a field says so.
type Limits struct {
	Tier              string  `json:"tier"`
	RequestsPerSecond float64 `json:"requests_per_second"` // token refill rate
	Burst             int     `json:"burst"`               // token bucket size
	MaxConcurrent     int     `json:"max_concurrent"`      // requests in flight at once
	MaxRecords        int64   `json:"max_records"`         // stored records, all collections
	MaxBytes          int64   `json:"max_bytes"`           // stored bytes of record data
	MaxBodyBytes      int64   `json:"max_body_bytes"`      // request body size
	MaxPageSize       int     `json:"max_page_size"`       // records per list page
	Weight            int     `json:"weight"`              // share under overload (fair queue)
	QueueDepth        int     `json:"queue_depth"`         // requests waiting for admission
}

// Source gives a tenant's effective limits. It is what the rate limiter,
// the admission queue, the store's quota check and the server consume.
type Source interface {
	For(ctx context.Context, id tenant.ID) (Limits, error)
}
