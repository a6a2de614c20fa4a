package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sync"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// ErrInvalidIssuer: an issuer configuration is malformed or unsafe.
var ErrInvalidIssuer = errors.New("invalid issuer")

// Issuer is one OIDC/JWT issuer a tenant trusts. A token is accepted for
// the tenant only if its iss equals Issuer, its aud contains Audience, its
// TenantClaim names the tenant and its signature verifies with a key from
// the issuer's JWKS under one of Algorithms.
type Issuer struct {
	// Issuer is the exact iss value: an https URL (http only for loopback
	// hosts, for tests and local development).
	Issuer string `json:"issuer"`
	// Audience is the aud value tokens must carry (e.g. the client id).
	Audience string `json:"audience"`
	// TenantClaim names the claim holding the tenant id (default "tenant").
	TenantClaim string `json:"tenant_claim,omitempty"`
	// RoleClaim names the claim holding the role (default "role"); it may
	// be a string or an array of strings (e.g. groups).
	RoleClaim string `json:"role_claim,omitempty"`
	// JWKSURL is where the signing keys are (default Issuer +
	// "/.well-known/jwks.json"); same URL rules as Issuer.
	JWKSURL string `json:"jwks_url,omitempty"`
	// RoleMap maps role claim values to admin, writer or reader. Empty
	// means the claim values are the role names themselves. A value that is
	// not mapped is refused; a missing role claim is refused.
	RoleMap map[string]string `json:"role_map,omitempty"`
	// Algorithms are the signature algorithms accepted (a subset of
	// AllowedAlgorithms; default DefaultAlgorithms). Never none or HMAC.
	Algorithms []string `json:"algorithms,omitempty"`
}

// AllowedAlgorithms are the asymmetric signature algorithms an Issuer may
// accept.
var AllowedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"}

// DefaultAlgorithms are accepted when an Issuer lists none.
var DefaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// MaxIssuers bounds how many issuers one tenant may trust.
const MaxIssuers = 16

// registeredClaims may not be used as tenant or role claims.
var registeredClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "azp", "nonce"}

var claimName = regexp.MustCompile(`^[A-Za-z0-9_:/.\-]{1,128}$`)

// WithDefaults returns is with defaults filled in (TenantClaim, RoleClaim,
// JWKSURL, Algorithms); Issuers returns issuers this way.
func (is Issuer) WithDefaults() Issuer {
	if is.TenantClaim == "" {
		is.TenantClaim = "tenant"
	}
	if is.RoleClaim == "" {
		is.RoleClaim = "role"
	}
	if is.JWKSURL == "" && is.Issuer != "" {
		u := is.Issuer
		for len(u) > 0 && u[len(u)-1] == '/' {
			u = u[:len(u)-1]
		}
		is.JWKSURL = u + "/.well-known/jwks.json"
	}
	if len(is.Algorithms) == 0 {
		is.Algorithms = slices.Clone(DefaultAlgorithms)
	}
	return is
}

// Validate reports whether is (with defaults filled in) is usable; errors
// wrap ErrInvalidIssuer.
func (is Issuer) Validate() error {
	is = is.WithDefaults()
	if err := validURL("issuer", is.Issuer); err != nil {
		return err
	}
	if err := validURL("jwks_url", is.JWKSURL); err != nil {
		return err
	}
	if is.Audience == "" || len(is.Audience) > 512 || !printable(is.Audience) {
		return fmt.Errorf("%w %s: audience must be 1 to 512 printable characters (the client id tokens carry in aud)", ErrInvalidIssuer, is.Issuer)
	}
	for _, c := range []struct{ field, v string }{{"tenant_claim", is.TenantClaim}, {"role_claim", is.RoleClaim}} {
		if !claimName.MatchString(c.v) || slices.Contains(registeredClaims, c.v) {
			return fmt.Errorf("%w %s: %s %q must be 1 to 128 of A-Z a-z 0-9 _ : / . - and not a registered claim (iss, sub, aud, ...)", ErrInvalidIssuer, is.Issuer, c.field, c.v)
		}
	}
	if is.TenantClaim == is.RoleClaim {
		return fmt.Errorf("%w %s: tenant_claim and role_claim must differ", ErrInvalidIssuer, is.Issuer)
	}
	for k, v := range is.RoleMap {
		if k == "" || len(k) > 256 || !printable(k) {
			return fmt.Errorf("%w %s: role_map keys must be 1 to 256 printable characters", ErrInvalidIssuer, is.Issuer)
		}
		if _, err := ParseRole(v); err != nil {
			return fmt.Errorf("%w %s: role_map[%q]: %v", ErrInvalidIssuer, is.Issuer, k, err)
		}
	}
	for _, a := range is.Algorithms {
		if !slices.Contains(AllowedAlgorithms, a) {
			return fmt.Errorf("%w %s: algorithm %q is not allowed (use RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA)", ErrInvalidIssuer, is.Issuer, a)
		}
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

// validURL accepts https URLs, and http URLs whose host is a loopback
// address or localhost; no user info, query or fragment.
func validURL(field, s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || len(s) > 2048 {
		return fmt.Errorf("%w: %s %q must be an absolute https URL without user info, query or fragment", ErrInvalidIssuer, field, s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s %q must use https (http is allowed only for loopback hosts)", ErrInvalidIssuer, field, s)
}

// SetIssuers replaces the list of issuers tenant id trusts (an empty list
// trusts none). Every instance's cache drops the old list when the change
// commits. It returns ErrNotFound for an unknown tenant and
// ErrInvalidState for one being provisioned or deleted.
func (c *Catalog) SetIssuers(ctx context.Context, id tenant.ID, list []Issuer) error {
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
// defaults filled in; none for an unknown tenant. Results are cached like
// tenant lookups (every change through any instance invalidates them).
func (c *Catalog) Issuers(ctx context.Context, id tenant.ID) ([]Issuer, error) {
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

func cloneIssuers(list []Issuer) []Issuer {
	out := make([]Issuer, len(list))
	for i, is := range list {
		is.RoleMap = maps.Clone(is.RoleMap)
		is.Algorithms = slices.Clone(is.Algorithms)
		out[i] = is
	}
	return out
}

// issuerCache holds Issuers results. An entry is served only while the
// catalog cache's generation is the one it was loaded under (any
// invalidation, local or announced by another instance, bumps it), the
// cache is not bypassed, and the TTL has not passed.
type issuerCache struct {
	mu sync.Mutex // guards m
	m  map[tenant.ID]issuerEntry
}

type issuerEntry struct {
	gen  uint64
	list []Issuer
	at   int64 // unix nanoseconds
}

func (ic *issuerCache) get(c *cache, id tenant.ID) ([]Issuer, bool) {
	c.mu.Lock()
	gen, bypass, now := c.gen, c.bypass, c.now()
	c.mu.Unlock()
	ic.mu.Lock()
	defer ic.mu.Unlock()
	e, ok := ic.m[id]
	if !ok || bypass || e.gen != gen || now.UnixNano()-e.at > int64(c.ttl) {
		return nil, false
	}
	return e.list, true
}

func (ic *issuerCache) put(c *cache, gen uint64, id tenant.ID, list []Issuer) {
	c.mu.Lock()
	cur, bypass, now := c.gen, c.bypass, c.now()
	c.mu.Unlock()
	if cur != gen || bypass {
		return
	}
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.m == nil || len(ic.m) >= maxCacheEntries {
		ic.m = map[tenant.ID]issuerEntry{}
	}
	ic.m[id] = issuerEntry{gen: gen, list: list, at: now.UnixNano()}
}
