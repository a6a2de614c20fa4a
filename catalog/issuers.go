package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/bulkhead-dev/bulkhead/identity"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Issuer is identity.Issuer, the issuer type the catalog stores (as its
// JSON form) and returns.
type Issuer = identity.Issuer

// ErrInvalidIssuer is identity.ErrInvalidIssuer: an issuer configuration
// is malformed or unsafe.
var ErrInvalidIssuer = identity.ErrInvalidIssuer

// MaxIssuers bounds how many issuers one tenant may trust.
const MaxIssuers = 16

var (
	_ identity.IssuerSource = (*Catalog)(nil)
	_ identity.ClaimSource  = (*Catalog)(nil)
)

// SetIssuers replaces the list of issuers tenant id trusts (an empty list
// trusts none). Every instance's cache drops the old list when the change
// commits. It returns ErrNotFound for an unknown tenant and
// ErrInvalidState for one being provisioned or deleted.
func (c *Catalog) SetIssuers(ctx context.Context, id tenant.ID, list []identity.Issuer) error {
	if id.IsZero() {
		return tenant.ErrMissing
	}
	if len(list) > MaxIssuers {
		return fmt.Errorf("%w: at most %d issuers per tenant", ErrInvalidIssuer, MaxIssuers)
	}
	specs := make([][]byte, len(list))
	seen := map[string]bool{}
	for i, is := range list {
		if err := is.Validate(); err != nil {
			return err
		}
		if seen[is.Issuer] {
			return fmt.Errorf("%w: issuer %s is listed twice", ErrInvalidIssuer, is.Issuer)
		}
		seen[is.Issuer] = true
		b, err := json.Marshal(is.WithDefaults())
		if err != nil {
			return fmt.Errorf("set issuers: %w", err)
		}
		specs[i] = b
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set issuers: %w", err)
	}
	defer tx.Rollback()
	lock := ""
	if c.d.postgres {
		lock = " FOR UPDATE" // serialises with Offboard, which updates the row first
	}
	var state string
	err = c.queryRow(ctx, tx, `SELECT state FROM tenants WHERE id = ?`+lock, id.String()).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("set issuers: %w", err)
	}
	if s := State(state); s != Active && s != Suspended {
		return fmt.Errorf("%w: tenant %s is %s", ErrInvalidState, id, s)
	}
	if _, err := c.exec(ctx, tx, `DELETE FROM issuers WHERE tenant_id = ?`, id.String()); err != nil {
		return fmt.Errorf("set issuers: %w", err)
	}
	for i, is := range list {
		if _, err := c.exec(ctx, tx, `INSERT INTO issuers (tenant_id, issuer, position, spec) VALUES (?, ?, ?, ?)`,
			id.String(), is.Issuer, i, string(specs[i])); err != nil {
			return fmt.Errorf("set issuers: %w", err)
		}
	}
	if err := c.notify(ctx, tx, tenantPayload(id.String())); err != nil {
		return fmt.Errorf("set issuers: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("set issuers: %w", err)
	}
	c.cache.invalidateTenant(id)
	return nil
}

// Issuers returns the issuers tenant id trusts, in the order set, with
// defaults filled in; none for an unknown tenant. It makes a Catalog an
// identity.IssuerSource. Results are cached like
// tenant lookups (every change through any instance invalidates them).
func (c *Catalog) Issuers(ctx context.Context, id tenant.ID) ([]identity.Issuer, error) {
	if id.IsZero() {
		return nil, tenant.ErrMissing
	}
	if list, ok := c.issuers.get(c.cache, id); ok {
		return cloneIssuers(list), nil
	}
	gen := c.cache.generation()
	rows, err := c.query(ctx, c.db, `SELECT spec FROM issuers WHERE tenant_id = ? ORDER BY position`, id.String())
	if err != nil {
		return nil, fmt.Errorf("read issuers: %w", err)
	}
	defer rows.Close()
	list := []Issuer{}
	for rows.Next() {
		var spec string
		if err := rows.Scan(&spec); err != nil {
			return nil, fmt.Errorf("read issuers: %w", err)
		}
		var is Issuer
		if err := json.Unmarshal([]byte(spec), &is); err != nil {
			return nil, fmt.Errorf("read issuers of %s: %w", id, err)
		}
		list = append(list, is.WithDefaults())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read issuers: %w", err)
	}
	c.issuers.put(c.cache, gen, id, list)
	return cloneIssuers(list), nil
}

// TenantClaims returns the tenant claims that the tenants trusting
// issuer configured for it, each once, sorted; none for an issuer no
// tenant trusts. It makes a Catalog an identity.ClaimSource, so a JWT's
// tenant is read from its issuer's configured claim whatever other claims
// the token holds. Cached like Issuers.
func (c *Catalog) TenantClaims(ctx context.Context, issuer string) ([]string, error) {
	if claims, ok := c.issuers.getClaims(c.cache, issuer); ok {
		return slices.Clone(claims), nil
	}
	gen := c.cache.generation()
	rows, err := c.query(ctx, c.db, `SELECT spec FROM issuers WHERE issuer = ?`, issuer)
	if err != nil {
		return nil, fmt.Errorf("read tenant claims: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var spec string
		if err := rows.Scan(&spec); err != nil {
			return nil, fmt.Errorf("read tenant claims: %w", err)
		}
		var is Issuer
		if err := json.Unmarshal([]byte(spec), &is); err != nil {
			return nil, fmt.Errorf("read tenant claims of issuer %q: %w", issuer, err)
		}
		seen[is.WithDefaults().TenantClaim] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read tenant claims: %w", err)
	}
	claims := slices.Sorted(maps.Keys(seen))
	c.issuers.putClaims(c.cache, gen, issuer, claims)
	return slices.Clone(claims), nil
}

func cloneIssuers(list []Issuer) []Issuer {
	out := make([]Issuer, len(list))
	for i, is := range list {
		is.RoleMap = maps.Clone(is.RoleMap)
		is.Algorithms = slices.Clone(is.Algorithms)
		out[i] = is
	}
	return out
}

// issuerCache holds Issuers results by tenant and TenantClaims results by
// issuer.
type issuerCache struct {
	byTenant genCache[tenant.ID, []Issuer]
	claims   genCache[string, []string]
}

func (ic *issuerCache) get(c *cache, id tenant.ID) ([]Issuer, bool) { return ic.byTenant.get(c, id) }

func (ic *issuerCache) put(c *cache, gen uint64, id tenant.ID, list []Issuer) {
	ic.byTenant.put(c, gen, id, list)
}

func (ic *issuerCache) getClaims(c *cache, issuer string) ([]string, bool) {
	return ic.claims.get(c, issuer)
}

func (ic *issuerCache) putClaims(c *cache, gen uint64, issuer string, claims []string) {
	ic.claims.put(c, gen, issuer, claims)
}

// genCache is a map of results loaded under the catalog cache's
// generation. An entry is served only while that generation is current
// (any invalidation, local or announced by another instance, bumps it), the
// cache is not bypassed, and the TTL has not passed.
type genCache[K comparable, V any] struct {
	mu sync.Mutex // guards m
	m  map[K]genEntry[V]
}

type genEntry[V any] struct {
	gen uint64
	v   V
	at  int64 // unix nanoseconds
}

func (g *genCache[K, V]) get(c *cache, k K) (V, bool) {
	c.mu.Lock()
	gen, bypass, now := c.gen, c.bypass, c.now()
	c.mu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.m[k]
	if !ok || bypass || e.gen != gen || now.UnixNano()-e.at > int64(c.ttl) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put stores v, loaded under generation gen, unless an invalidation came
// since.
func (g *genCache[K, V]) put(c *cache, gen uint64, k K, v V) {
	c.mu.Lock()
	cur, bypass, now := c.gen, c.bypass, c.now()
	c.mu.Unlock()
	if cur != gen || bypass {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil || len(g.m) >= maxCacheEntries {
		g.m = map[K]genEntry[V]{}
	}
	g.m[k] = genEntry[V]{gen: gen, v: v, at: now.UnixNano()}
}
