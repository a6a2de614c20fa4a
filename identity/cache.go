package identity

import (
	"context"
	"crypto/sha256"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the verified-token cache (see the package doc).
const (
	DefaultCacheSize = 10000
	DefaultCacheTTL  = 5 * time.Minute
)

// timeTrunc is the granularity jwx truncates the clock and exp/nbf/iat to
// before comparing them (its default); hits use the same rule.
const timeTrunc = time.Second

// cacheKey is the SHA-256 of the full token string: the token itself is
// never stored.
type cacheKey [sha256.Size]byte

// cached is what a successful verification leaves behind: enough to
// re-check the token's time window and its issuer's trust without parsing
// or verifying the signature again. Immutable once stored.
type cached struct {
	user        User      // Role is re-mapped on every hit
	tenantClaim string    // the claim that named user.Tenant
	audience    string    // the issuer's Audience the aud claim was checked against
	alg         string    // the header's alg
	jwksURL     string    // where the verifying key came from
	roleClaim   string    // the issuer's RoleClaim at verification
	roles       []string  // that claim's raw values
	expLimit    time.Time // valid while now (truncated) is before this: exp + skew
	nbfLimit    time.Time // and not before this: max(nbf, iat) - skew
	deadline    time.Time // and before this: verification time + TTL
}

// tokenCache is a bounded map of verified tokens, safe for concurrent use.
// When full, an arbitrary entry (Go's randomized map iteration order) is
// evicted to make room.
type tokenCache struct {
	max int
	ttl time.Duration

	mu sync.RWMutex
	m  map[cacheKey]*cached

	verifications atomic.Int64 // signature checks performed (test hook)
}

func newTokenCache(size int, ttl time.Duration) *tokenCache {
	if size == 0 {
		size = DefaultCacheSize
	}
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	if size < 0 {
		size = 0 // disabled
	}
	return &tokenCache{max: size, ttl: ttl, m: make(map[cacheKey]*cached)}
}

func (c *tokenCache) get(k cacheKey) *cached {
	if c.max == 0 {
		return nil
	}
	c.mu.RLock()
	e := c.m[k]
	c.mu.RUnlock()
	return e
}

func (c *tokenCache) put(k cacheKey, e *cached) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok {
		for victim := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, victim)
		}
	}
	c.m[k] = e
}

// drop removes k if it still holds e (a concurrent put may have replaced
// it with a fresher entry).
func (c *tokenCache) drop(k cacheKey, e *cached) {
	c.mu.Lock()
	if c.m[k] == e {
		delete(c.m, k)
	}
	c.mu.Unlock()
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// fromCache returns the user of a cached verification of the token hashed
// to k if that verification still holds: now (the verifier's clock,
// truncated like jwx does) is before exp + ClockSkew, not before
// nbf/iat - ClockSkew, and before the entry's TTL deadline; and the tenant
// still trusts the same issuer with the same tenant claim, audience, JWKS
// URL, role claim and an allow-list holding the token's alg. The role is
// re-mapped through the issuer's current RoleMap. Anything else is a miss
// (the entry is dropped) and the caller verifies the token in full, so a
// miss can never accept what full verification would refuse.
func (v *Verifier) fromCache(ctx context.Context, k cacheKey) (User, bool) {
	e := v.cache.get(k)
	if e == nil {
		return User{}, false
	}
	now := v.now().Truncate(timeTrunc)
	if !now.Before(e.expLimit) || now.Before(e.nbfLimit) || !now.Before(e.deadline) {
		v.cache.drop(k, e)
		return User{}, false
	}
	list, err := v.issuers.Issuers(ctx, e.user.Tenant)
	if err != nil {
		return User{}, false // the full path reports it; the entry may be fine
	}
	for _, is := range list {
		if is.Issuer != e.user.Issuer || is.TenantClaim != e.tenantClaim {
			continue
		}
		if is.Audience != e.audience || is.JWKSURL != e.jwksURL || is.RoleClaim != e.roleClaim ||
			!slices.Contains(is.Algorithms, e.alg) {
			break
		}
		role, ok := mapValues(is, e.roles)
		if !ok {
			break
		}
		u := e.user
		u.Role = role
		return u, true
	}
	v.cache.drop(k, e)
	return User{}, false
}

// remember caches a successful verification of the token hashed to k.
func (v *Verifier) remember(k cacheKey, u User, is Issuer, alg string, roles []string, exp, nbf time.Time) {
	e := &cached{
		user: u, tenantClaim: is.TenantClaim, audience: is.Audience, alg: alg, jwksURL: is.JWKSURL,
		roleClaim: is.RoleClaim, roles: roles,
		expLimit: exp.Truncate(timeTrunc).Add(ClockSkew),
		deadline: v.now().Truncate(timeTrunc).Add(v.cache.ttl),
	}
	if !nbf.IsZero() {
		e.nbfLimit = nbf.Truncate(timeTrunc).Add(-ClockSkew)
	}
	v.cache.put(k, e)
}
