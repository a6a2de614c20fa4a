package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Offboard marks the tenant deleting (its credentials stop working at
// once), revokes its keys, calls drop to remove its data, and then removes
// the tenant and its keys from the catalog, so the id can be created again
// and starts empty. If drop fails the tenant stays in state deleting;
// calling Offboard again (or ResumeOffboarding) finishes the job.
func (c *Catalog) Offboard(ctx context.Context, id tenant.ID, drop ProvisionFunc) error {
	t, err := c.change(ctx, id, func(t *Tenant) error {
		if t.State == Provisioning {
			return fmt.Errorf("%w: tenant %s is still being provisioned", ErrInvalidState, id)
		}
		t.State = Deleting
		return nil
	})
	if err != nil {
		return err
	}
	now := micros(c.now())
	if _, err := c.execNotify(ctx, tenantPayload(id.String()), `UPDATE api_keys SET revoked_at = ? WHERE tenant_id = ? AND revoked_at IS NULL`, now, id.String()); err != nil {
		return fmt.Errorf("revoke keys of %s: %w", id, err)
	}
	c.cache.invalidateTenant(id)
	if err := drop(ctx, id, t.Placement); err != nil {
		return fmt.Errorf("drop data of %s: %w", id, err)
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("remove tenant %s: %w", id, err)
	}
	defer tx.Rollback()
	if _, err := c.exec(ctx, tx, `DELETE FROM api_keys WHERE tenant_id = ?`, id.String()); err != nil {
		return fmt.Errorf("remove keys of %s: %w", id, err)
	}
	if _, err := c.exec(ctx, tx, `DELETE FROM issuers WHERE tenant_id = ?`, id.String()); err != nil {
		return fmt.Errorf("remove issuers of %s: %w", id, err)
	}
	if _, err := c.exec(ctx, tx, `DELETE FROM tenant_limits WHERE tenant_id = ?`, id.String()); err != nil {
		return fmt.Errorf("remove limits of %s: %w", id, err)
	}
	if _, err := c.exec(ctx, tx, `DELETE FROM tenant_retention WHERE tenant_id = ?`, id.String()); err != nil {
		return fmt.Errorf("remove retention rules of %s: %w", id, err)
	}
	if _, err := c.exec(ctx, tx, `DELETE FROM tenant_events WHERE tenant_id = ?`, id.String()); err != nil {
		return fmt.Errorf("remove event settings of %s: %w", id, err)
	}
	if _, err := c.exec(ctx, tx, `DELETE FROM tenants WHERE id = ? AND state = ?`, id.String(), string(Deleting)); err != nil {
		return fmt.Errorf("remove tenant %s: %w", id, err)
	}
	if err := c.notify(ctx, tx, tenantPayload(id.String())); err != nil {
		return fmt.Errorf("remove tenant %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("remove tenant %s: %w", id, err)
	}
	c.cache.invalidateTenant(id)
	return nil
}

// ResumeOffboarding finishes every offboarding a crash interrupted and
// removes tenants whose provisioning was interrupted (dropping whatever
// storage they got).
func (c *Catalog) ResumeOffboarding(ctx context.Context, drop ProvisionFunc) error {
	rows, err := c.query(ctx, c.db, `SELECT `+tenantCols+` FROM tenants WHERE state IN (?, ?) ORDER BY id`,
		string(Deleting), string(Provisioning))
	if err != nil {
		return fmt.Errorf("find interrupted offboardings: %w", err)
	}
	var pending []Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			rows.Close()
			return err
		}
		pending = append(pending, t)
	}
	rows.Close()
	var errs []error
	for _, t := range pending {
		if t.State == Provisioning {
			if _, err := c.execNotify(ctx, tenantPayload(t.ID.String()), `UPDATE tenants SET state = ? WHERE id = ? AND state = ?`,
				string(Deleting), t.ID.String(), string(Provisioning)); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := c.Offboard(ctx, t.ID, drop); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
