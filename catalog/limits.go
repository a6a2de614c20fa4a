package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var _ limits.OverrideSource = (*Catalog)(nil)

// decodeLimits parses a stored override set.
func decodeLimits(spec string) (limits.Overrides, error) {
	var o limits.Overrides
	if err := json.Unmarshal([]byte(spec), &o); err != nil {
		return limits.Overrides{}, fmt.Errorf("catalog holds invalid limits: %w", err)
	}
	return o, nil
}

// TenantLimits implements limits.OverrideSource: the tenant's tier and stored
// overrides, from the request-path cache (invalidated by every change,
// on PostgreSQL also by other instances' changes). A tenant that is not
// active or suspended yields an error wrapping ErrNotFound.
func (c *Catalog) TenantLimits(ctx context.Context, id tenant.ID) (string, limits.Overrides, error) {
	e, err := c.tenantEntry(ctx, id)
	if err != nil {
		return "", limits.Overrides{}, err
	}
	if !e.found || (e.state != Active && e.state != Suspended) {
		return "", limits.Overrides{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return e.tier, e.limits, nil
}

// Limits returns the tenant's stored overrides (uncached), or ErrNotFound.
func (c *Catalog) Limits(ctx context.Context, id tenant.ID) (limits.Overrides, error) {
	var spec sql.NullString
	err := c.queryRow(ctx, c.db, `SELECT l.spec FROM tenants t LEFT JOIN tenant_limits l ON l.tenant_id = t.id WHERE t.id = ?`,
		id.String()).Scan(&spec)
	if errors.Is(err, sql.ErrNoRows) {
		return limits.Overrides{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return limits.Overrides{}, fmt.Errorf("read limits: %w", err)
	}
	if !spec.Valid {
		return limits.Overrides{}, nil
	}
	return decodeLimits(spec.String)
}

// writeLimits stores o as the tenant's overrides in tx (no overrides
// deletes the row). o must be valid.
func (c *Catalog) writeLimits(ctx context.Context, tx *sql.Tx, id tenant.ID, o limits.Overrides) error {
	var err error
	if o.IsZero() {
		_, err = c.exec(ctx, tx, `DELETE FROM tenant_limits WHERE tenant_id = ?`, id.String())
	} else {
		var spec []byte
		if spec, err = json.Marshal(o); err != nil {
			return fmt.Errorf("set limits: %w", err)
		}
		_, err = c.exec(ctx, tx, `INSERT INTO tenant_limits (tenant_id, spec) VALUES (?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET spec = excluded.spec`, id.String(), string(spec))
	}
	if err != nil {
		return fmt.Errorf("set limits: %w", err)
	}
	return nil
}

// SetLimits replaces the tenant's overrides with o (the zero Overrides
// removes them). o must pass Validate (else an error wrapping
// limits.ErrInvalid); the tenant must be active or suspended (else
// ErrInvalidState), or exist at all (else ErrNotFound).
func (c *Catalog) SetLimits(ctx context.Context, id tenant.ID, o limits.Overrides) error {
	_, err := c.UpdateTenant(ctx, id, TenantUpdate{Limits: &o})
	return err
}
