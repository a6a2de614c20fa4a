package limits

import (
	"context"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// OverrideSource gives a tenant's tier and its stored overrides. The
// catalog implements it with a cached lookup (catalog.Catalog.TenantLimits),
// invalidated on every change, also across instances; a team may implement
// it over its own plans. Resolver asks it on every For, so it should be
// cheap.
type OverrideSource interface {
	TenantLimits(ctx context.Context, id tenant.ID) (tier string, o Overrides, err error)
}

// Resolver implements Source: tier defaults (built-in, adjusted by the
// file's "tiers"), then the tenant's catalog overrides, then the file's
// entry for the tenant, which wins. It is safe for concurrent use and cheap
// enough for every request: a cached catalog lookup and a few field copies.
type Resolver struct {
	src      OverrideSource
	file     *File
	defaults map[string]Limits
}

var _ Source = (*Resolver)(nil)

// NewResolver returns a Resolver over src; file may be nil.
func NewResolver(src OverrideSource, file *File) *Resolver {
	return &Resolver{src: src, file: file, defaults: Defaults()}
}

// For implements Source.
func (r *Resolver) For(ctx context.Context, id tenant.ID) (Limits, error) {
	tier, o, err := r.src.TenantLimits(ctx, id)
	if err != nil {
		return Limits{}, err
	}
	var fc *FileConfig
	if r.file != nil {
		fc = r.file.Config()
	}
	return Resolve(r.defaults, tier, o, fc, id)
}

// StorageQuota returns the tenant's MaxRecords and MaxBytes (0: no quota),
// which makes a Resolver the store.Router's quota source (store.Quotas).
func (r *Resolver) StorageQuota(ctx context.Context, id tenant.ID) (maxRecords, maxBytes int64, err error) {
	l, err := r.For(ctx, id)
	if err != nil {
		return 0, 0, err
	}
	return l.MaxRecords, l.MaxBytes, nil
}

// Resolve computes effective limits from defaults (by tier), the catalog
// overrides o and the file fc (nil: none) for tenant id.
func Resolve(defaults map[string]Limits, tier string, o Overrides, fc *FileConfig, id tenant.ID) (Limits, error) {
	l, ok := defaults[tier]
	if !ok {
		return Limits{}, fmt.Errorf("%w: tenant %s has unknown tier %q", ErrInvalid, id, tier)
	}
	if fc != nil {
		l = fc.Tiers[tier].Apply(l)
	}
	l = o.Apply(l)
	if fc != nil {
		l = fc.Tenants[id.String()].Apply(l)
	}
	return l, nil
}
