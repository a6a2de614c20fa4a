package catalog

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Support agents are operator staff who may read a tenant's data, and then
// only through a live grant (grants.go). Their tokens look like tenant
// keys with another prefix: bks_<agent_id>_<secret>; only SHA-256(secret)
// is stored.
//
// Agent and grant lookups are not cached: every support request reads the
// catalog, so a revocation on any instance holds on the next request of
// every instance. Changes are still announced (NOTIFY) for other caches.
const agentTokenPrefix = "bks_"

// ErrAgentNotFound: no such support agent.
var ErrAgentNotFound = errors.New("support agent not found")

// Agent is a support agent's metadata; the secret is never stored.
type Agent struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// IsAgentToken reports whether token has the shape of a support agent
// token (so ingress can route it without a lookup).
func IsAgentToken(token string) bool { return strings.HasPrefix(token, agentTokenPrefix) }

func parseAgentToken(token string) (id, secret string, ok bool) {
	return parsePrefixedToken(token, agentTokenPrefix)
}

// CreateAgent registers a support agent and returns its token
// bks_<id>_<secret>, shown once and never stored.
func (c *Catalog) CreateAgent(ctx context.Context, name string) (Agent, string, error) {
	if err := ValidName(name); err != nil {
		return Agent{}, "", err
	}
	a := Agent{ID: newKeyID(), Name: name, CreatedAt: c.now().UTC().Truncate(time.Microsecond)}
	secret := newSecret()
	hash := sha256.Sum256([]byte(secret))
	if _, err := c.execNotify(ctx, agentPayload(a.ID), `INSERT INTO support_agents (id, name, secret_hash, created_at) VALUES (?, ?, ?, ?)`,
		a.ID, name, hash[:], micros(a.CreatedAt)); err != nil {
		return Agent{}, "", fmt.Errorf("create support agent: %w", err)
	}
	return a, agentTokenPrefix + a.ID + "_" + secret, nil
}

// RevokeAgent revokes a support agent at once; ErrAgentNotFound if there
// is no such agent. Revoking twice is a no-op.
func (c *Catalog) RevokeAgent(ctx context.Context, id string) error {
	if !validKeyID(id) {
		return fmt.Errorf("%w: %q", ErrAgentNotFound, clipName(id))
	}
	res, err := c.execNotify(ctx, agentPayload(id), `UPDATE support_agents SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`,
		micros(c.now()), id)
	if err != nil {
		return fmt.Errorf("revoke support agent: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("%w: %s", ErrAgentNotFound, id)
	}
	return nil
}

// Agent returns a support agent (revoked or not), or ErrAgentNotFound.
func (c *Catalog) Agent(ctx context.Context, id string) (Agent, error) {
	if !validKeyID(id) {
		return Agent{}, fmt.Errorf("%w: %q", ErrAgentNotFound, clipName(id))
	}
	var (
		a       Agent
		created int64
		revoked sql.NullInt64
	)
	err := c.queryRow(ctx, c.db, `SELECT id, name, created_at, revoked_at FROM support_agents WHERE id = ?`, id).
		Scan(&a.ID, &a.Name, &created, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return Agent{}, fmt.Errorf("%w: %s", ErrAgentNotFound, id)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("read support agent: %w", err)
	}
	a.CreatedAt = fromMicros(created)
	if revoked.Valid {
		t := fromMicros(revoked.Int64)
		a.RevokedAt = &t
	}
	return a, nil
}

// AuthenticateAgent resolves a support agent token: a malformed, unknown
// or revoked token or a wrong secret gives ErrUnauthenticated. The secret
// is compared in constant time against its stored SHA-256 hash.
func (c *Catalog) AuthenticateAgent(ctx context.Context, token string) (Agent, error) {
	id, secret, ok := parseAgentToken(token)
	if !ok {
		return Agent{}, ErrUnauthenticated
	}
	var (
		hash    []byte
		name    string
		revoked sql.NullInt64
	)
	err := c.queryRow(ctx, c.db, `SELECT name, secret_hash, revoked_at FROM support_agents WHERE id = ?`, id).Scan(&name, &hash, &revoked)
	var stored [sha256.Size]byte
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Agent{}, fmt.Errorf("read support agent: %w", err)
	default:
		copy(stored[:], hash)
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], stored[:]) != 1 || err != nil || revoked.Valid {
		return Agent{}, ErrUnauthenticated
	}
	return Agent{ID: id, Name: name}, nil
}

// TenantState returns the state of a tenant (cached like Placement), or
// ErrNotFound. Ingress uses it for credentials that name their tenant
// without a catalog key (JWTs).
func (c *Catalog) TenantState(ctx context.Context, id tenant.ID) (State, error) {
	e, err := c.tenantEntry(ctx, id)
	if err != nil {
		return "", err
	}
	if !e.found {
		return "", fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return e.state, nil
}

// Incarnation returns the state of a tenant and the start of its current
// incarnation: the instant its id was last created (Tenant.CreatedAt). A
// tenant deleted and created again with the same id is a new tenant, and
// nothing issued before its incarnation began — API keys, support grants,
// tenant users' JWTs (by their iat) — speaks for it. Cached like
// TenantState; ErrNotFound for an unknown tenant.
func (c *Catalog) Incarnation(ctx context.Context, id tenant.ID) (State, time.Time, error) {
	e, err := c.tenantEntry(ctx, id)
	if err != nil {
		return "", time.Time{}, err
	}
	if !e.found {
		return "", time.Time{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return e.state, e.created, nil
}

func agentPayload(id string) string { return "a:" + id }
