package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// MaxGrantDuration bounds how long a support grant may last.
const MaxGrantDuration = 24 * time.Hour

// Grant errors.
var (
	// ErrGrantNotFound: no such grant for this tenant.
	ErrGrantNotFound = errors.New("grant not found")
	// ErrInvalidGrant: a grant without a reason, or with an expiry in the
	// past or further than MaxGrantDuration ahead.
	ErrInvalidGrant = errors.New("invalid grant")
)

// Grant lets one support agent read one tenant's data until ExpiresAt,
// for a stated reason.
type Grant struct {
	ID        string     `json:"id"`
	Tenant    tenant.ID  `json:"tenant"`
	AgentID   string     `json:"agent_id"`
	Reason    string     `json:"reason"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// CreateGrant records a grant for the tenant. The agent must exist and
// not be revoked, the tenant must be active or suspended, the reason must
// be a valid name, and expiresAt must be after now and at most
// MaxGrantDuration ahead.
func (c *Catalog) CreateGrant(ctx context.Context, id tenant.ID, agentID, reason string, expiresAt time.Time) (Grant, error) {
	if err := ValidName(reason); err != nil {
		return Grant{}, fmt.Errorf("%w: reason: %v", ErrInvalidGrant, err)
	}
	now := c.now().UTC().Truncate(time.Microsecond)
	expiresAt = expiresAt.UTC().Truncate(time.Microsecond)
	if !expiresAt.After(now) {
		return Grant{}, fmt.Errorf("%w: expiry must be in the future", ErrInvalidGrant)
	}
	if expiresAt.Sub(now) > MaxGrantDuration {
		return Grant{}, fmt.Errorf("%w: expiry must be at most %s ahead", ErrInvalidGrant, MaxGrantDuration)
	}
	a, err := c.Agent(ctx, agentID)
	if err != nil {
		return Grant{}, err
	}
	if a.RevokedAt != nil {
		return Grant{}, fmt.Errorf("%w: %s is revoked", ErrAgentNotFound, agentID)
	}
	g := Grant{ID: newKeyID(), Tenant: id, AgentID: agentID, Reason: reason, CreatedAt: now, ExpiresAt: expiresAt}
	res, err := c.execNotify(ctx, tenantPayload(id.String()), `INSERT INTO support_grants (tenant_id, id, agent_id, reason, created_at, expires_at)
		SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM tenants WHERE id = ? AND state IN (?, ?))`,
		id.String(), g.ID, agentID, reason, micros(now), micros(expiresAt), id.String(), string(Active), string(Suspended))
	if err != nil {
		return Grant{}, fmt.Errorf("create grant: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Grant{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return g, nil
}

// ListGrants returns the tenant's grants, newest first (expired and
// revoked ones included).
func (c *Catalog) ListGrants(ctx context.Context, id tenant.ID) ([]Grant, error) {
	rows, err := c.query(ctx, c.db, `SELECT id, agent_id, reason, created_at, expires_at, revoked_at
		FROM support_grants WHERE tenant_id = ? ORDER BY created_at DESC, id`, id.String())
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	defer rows.Close()
	out := []Grant{}
	for rows.Next() {
		var (
			g                Grant
			created, expires int64
			revoked          sql.NullInt64
		)
		if err := rows.Scan(&g.ID, &g.AgentID, &g.Reason, &created, &expires, &revoked); err != nil {
			return nil, fmt.Errorf("list grants: %w", err)
		}
		g.Tenant, g.CreatedAt, g.ExpiresAt = id, fromMicros(created), fromMicros(expires)
		if revoked.Valid {
			t := fromMicros(revoked.Int64)
			g.RevokedAt = &t
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// RevokeGrant ends a grant at once; ErrGrantNotFound if the tenant has no
// such grant. Revoking twice is a no-op.
func (c *Catalog) RevokeGrant(ctx context.Context, id tenant.ID, grantID string) error {
	if !validKeyID(grantID) {
		return fmt.Errorf("%w: %q", ErrGrantNotFound, clipName(grantID))
	}
	res, err := c.execNotify(ctx, tenantPayload(id.String()), `UPDATE support_grants SET revoked_at = coalesce(revoked_at, ?) WHERE tenant_id = ? AND id = ?`,
		micros(c.now()), id.String(), grantID)
	if err != nil {
		return fmt.Errorf("revoke grant: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("%w: %s", ErrGrantNotFound, grantID)
	}
	return nil
}

// LiveGrant reports whether the agent holds a grant for the tenant that is
// unexpired and unrevoked now, from a live agent, and made after the
// tenant was created (so a grant for an offboarded tenant never carries
// over to a new tenant with the same id). It is read from the database on
// every call.
func (c *Catalog) LiveGrant(ctx context.Context, agentID string, id tenant.ID) (bool, error) {
	now := micros(c.now())
	var n int
	err := c.queryRow(ctx, c.db, `SELECT count(*) FROM support_grants g
		JOIN tenants t ON t.id = g.tenant_id
		JOIN support_agents a ON a.id = g.agent_id
		WHERE g.tenant_id = ? AND g.agent_id = ? AND g.revoked_at IS NULL AND g.expires_at > ?
		AND g.created_at >= t.created_at AND t.state IN (?, ?) AND a.revoked_at IS NULL`,
		id.String(), agentID, now, string(Active), string(Suspended)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check grant: %w", err)
	}
	return n > 0, nil
}
