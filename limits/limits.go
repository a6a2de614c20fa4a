// Package limits resolves each tenant's effective limits: the defaults of
// its tier, then the per-tenant overrides stored in the catalog, then an
// optional limits file that is reloaded on change.
package limits

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

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
// the admission queue and the server consume; the store's quota check
// takes its own store.Quotas, which a Resolver also implements.
type Source interface {
	For(ctx context.Context, id tenant.ID) (Limits, error)
}

// Tier names.
const (
	Free       = "free"
	Standard   = "standard"
	Enterprise = "enterprise"
)

// Bounds every effective limit must respect.
const (
	// MaxPageSizeCap is the largest page a list may return (store.MaxLimit).
	MaxPageSizeCap = 1000
	// MaxBodyBytesCap is the largest request body the server accepts at all.
	MaxBodyBytesCap = 64 << 20
)

// Defaults returns the built-in defaults of every tier. MaxRecords and
// MaxBytes of 0 mean "no quota"; every other field is positive.
func Defaults() map[string]Limits {
	return map[string]Limits{
		Free: {Tier: Free, RequestsPerSecond: 5, Burst: 10, MaxConcurrent: 4,
			MaxRecords: 10_000, MaxBytes: 50 << 20, MaxBodyBytes: 256 << 10,
			MaxPageSize: 100, Weight: 1, QueueDepth: 8},
		Standard: {Tier: Standard, RequestsPerSecond: 50, Burst: 100, MaxConcurrent: 16,
			MaxRecords: 1_000_000, MaxBytes: 5 << 30, MaxBodyBytes: 1 << 20,
			MaxPageSize: 1000, Weight: 2, QueueDepth: 32},
		Enterprise: {Tier: Enterprise, RequestsPerSecond: 500, Burst: 1000, MaxConcurrent: 64,
			MaxRecords: 100_000_000, MaxBytes: 500 << 30, MaxBodyBytes: 1 << 20,
			MaxPageSize: 1000, Weight: 4, QueueDepth: 128},
	}
}

// ErrInvalid reports limits or overrides that break the rules of Validate.
var ErrInvalid = errors.New("invalid limits")

// Overrides are a partial set of limits: nil fields leave the value below
// them (tier default, catalog override) as it is.
type Overrides struct {
	RequestsPerSecond *float64 `json:"requests_per_second,omitempty"`
	Burst             *int     `json:"burst,omitempty"`
	MaxConcurrent     *int     `json:"max_concurrent,omitempty"`
	MaxRecords        *int64   `json:"max_records,omitempty"`
	MaxBytes          *int64   `json:"max_bytes,omitempty"`
	MaxBodyBytes      *int64   `json:"max_body_bytes,omitempty"`
	MaxPageSize       *int     `json:"max_page_size,omitempty"`
	Weight            *int     `json:"weight,omitempty"`
	QueueDepth        *int     `json:"queue_depth,omitempty"`
}

// IsZero reports whether o overrides nothing.
func (o Overrides) IsZero() bool { return o == Overrides{} }

// Apply returns l with o's set fields replacing l's.
func (o Overrides) Apply(l Limits) Limits {
	if o.RequestsPerSecond != nil {
		l.RequestsPerSecond = *o.RequestsPerSecond
	}
	if o.Burst != nil {
		l.Burst = *o.Burst
	}
	if o.MaxConcurrent != nil {
		l.MaxConcurrent = *o.MaxConcurrent
	}
	if o.MaxRecords != nil {
		l.MaxRecords = *o.MaxRecords
	}
	if o.MaxBytes != nil {
		l.MaxBytes = *o.MaxBytes
	}
	if o.MaxBodyBytes != nil {
		l.MaxBodyBytes = *o.MaxBodyBytes
	}
	if o.MaxPageSize != nil {
		l.MaxPageSize = *o.MaxPageSize
	}
	if o.Weight != nil {
		l.Weight = *o.Weight
	}
	if o.QueueDepth != nil {
		l.QueueDepth = *o.QueueDepth
	}
	return l
}

// Validate reports, wrapping ErrInvalid, the first set field out of range:
// requests_per_second > 0 (finite), burst, max_concurrent, weight and
// queue_depth ≥ 1, max_records and max_bytes ≥ 0 (0: no quota),
// max_body_bytes 1..MaxBodyBytesCap, max_page_size 1..MaxPageSizeCap.
func (o Overrides) Validate() error {
	bad := func(field string, rule string) error {
		return fmt.Errorf("%w: %s must be %s", ErrInvalid, field, rule)
	}
	if v := o.RequestsPerSecond; v != nil && (!(*v > 0) || math.IsInf(*v, 0)) {
		return bad("requests_per_second", "a positive number")
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"burst", o.Burst}, {"max_concurrent", o.MaxConcurrent}, {"weight", o.Weight}, {"queue_depth", o.QueueDepth}} {
		if f.v != nil && *f.v < 1 {
			return bad(f.name, "at least 1")
		}
	}
	if o.MaxRecords != nil && *o.MaxRecords < 0 {
		return bad("max_records", "0 (no quota) or more")
	}
	if o.MaxBytes != nil && *o.MaxBytes < 0 {
		return bad("max_bytes", "0 (no quota) or more")
	}
	if v := o.MaxBodyBytes; v != nil && (*v < 1 || *v > MaxBodyBytesCap) {
		return bad("max_body_bytes", fmt.Sprintf("1 to %d", MaxBodyBytesCap))
	}
	if v := o.MaxPageSize; v != nil && (*v < 1 || *v > MaxPageSizeCap) {
		return bad("max_page_size", fmt.Sprintf("1 to %d", MaxPageSizeCap))
	}
	return nil
}

// ParseOverrides decodes a JSON object of overrides (unknown fields are an
// error) and validates it.
func ParseOverrides(b []byte) (Overrides, error) {
	var o Overrides
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return Overrides{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return o, o.Validate()
}
