// Package identity verifies OIDC/JWT bearer tokens at ingress, beside API
// keys. Each tenant lists the issuers it trusts (Issuer, given by an
// IssuerSource such as the catalog, where (*catalog.Catalog).SetIssuers sets
// them); a token is accepted only if a string
// claim names a tenant that trusts the token's issuer with that claim as its
// tenant claim, its alg is on that issuer's allow-list of asymmetric
// algorithms (never none or HMAC), its signature verifies with a key from
// the issuer's JWKS, exp/nbf/iss/aud hold (30 s skew), and its role claim
// maps to admin, writer or reader. The principal is (issuer, subject),
// never an email.
//
//	v := identity.NewVerifier(identity.VerifierOptions{Issuers: cat})
//	defer v.Close()
//	if identity.LooksLikeJWT(bearer) {
//		user, err := v.Verify(ctx, bearer) // errors wrap identity.ErrInvalidToken
//		...
//	}
//
// A missing role claim is refused (no default role), as is a claim value
// the issuer's role_map does not name. Whether the tenant is active or
// suspended is the caller's check.
//
// # Verified-token cache
//
// Checking an RS256 signature costs tens of microseconds, so each Verifier
// keeps a bounded cache (VerifierOptions.CacheSize, default 10,000 entries;
// an arbitrary entry is evicted when full) of tokens it verified, keyed by
// the SHA-256 of the token string; the token itself is never stored, and
// failures are never cached. A token changed in any byte hashes elsewhere
// and is verified in full. On a hit only the signature check (and parsing)
// is skipped: exp, nbf and iat are checked again on the Verifier's clock
// with ClockSkew; the tenant's issuers are loaded again (the catalog caches
// them and invalidates its cache across instances) and must still hold the
// same issuer with the same tenant claim, audience, JWKS URL and role
// claim, with the token's alg allowed; and the role claim's values are
// mapped through the current role_map, so a changed role_map applies to
// the next request. A hit that fails any of this is dropped and the token
// verified in full, which gives the answer.
//
// The trade-off: a cached verification does not see the issuer's JWKS. A
// token whose signing key the identity provider withdraws from its JWKS
// keeps being accepted until its exp or until VerifierOptions.CacheTTL
// (default 5 minutes) after it was verified, whichever comes first.
// Without the cache the bound is the JWKS refresh interval (5 minutes to
// an hour), so the cache does not lengthen how long a withdrawn key is
// honoured by more than CacheTTL. Lower CacheTTL, or set CacheSize
// negative to turn the cache off, where that is too long.
package identity
