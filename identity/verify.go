package identity

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// ErrInvalidToken: the token is malformed, not trusted, badly signed,
// expired, not yet valid, for another audience, or maps to no role. Every
// error Verify returns wraps it.
var ErrInvalidToken = errors.New("invalid token")

// ClockSkew is how far exp and nbf may be off the verifier's clock.
const ClockSkew = 30 * time.Second

// maxTokenBytes bounds what Verify parses at all.
const maxTokenBytes = 16 << 10

// maxTenantCandidates bounds the catalog lookups one token can cause.
const maxTenantCandidates = 4

// User is the principal a verified token speaks for: (Issuer, Subject) in
// Tenant with Role. The email claim is never used.
type User struct {
	Tenant  tenant.ID
	Issuer  string
	Subject string
	Role    Role
	// IssuedAt is the token's iat, zero if it has none. The catalog's
	// authenticator refuses a token issued before its tenant's current
	// incarnation began, and one without iat (see docs/identity.md).
	IssuedAt time.Time
}

// VerifierOptions configures NewVerifier.
type VerifierOptions struct {
	// Issuers gives the issuers each tenant trusts (a *Catalog,
	// or IssuerSourceFunc over a team's own configuration).
	Issuers IssuerSource
	// HTTPClient fetches JWKS (nil: jwx's default client, with timeouts).
	HTTPClient *http.Client
	// Now is the clock for exp, nbf and refresh rate limits (nil: time.Now).
	Now func() time.Time
	// MinRefreshInterval is how often a token with an unknown kid may make
	// one JWKS URL be fetched again (default 30s).
	MinRefreshInterval time.Duration
	// CacheSize bounds the cache of verified tokens (0: DefaultCacheSize;
	// negative: no cache, every request verifies the signature).
	CacheSize int
	// CacheTTL bounds how long a cached verification is honoured without
	// checking the signature again (0: DefaultCacheTTL); see the package doc.
	CacheTTL time.Duration
}

// Verifier checks JWTs against the issuers each tenant trusts. Signing
// keys are fetched from the issuers' JWKS URLs and kept in a jwk.Cache that
// refreshes them in the background. It is safe for concurrent use; Close
// stops the background refreshes.
type Verifier struct {
	issuers    IssuerSource
	now        func() time.Time
	keys       *keySource
	cancel     context.CancelFunc
	initErr    error
	algorithms map[string]jwa.SignatureAlgorithm
	cache      *tokenCache
}

// NewVerifier returns a Verifier. A Verifier without Issuers refuses every
// token.
func NewVerifier(opts VerifierOptions) *Verifier {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	v := &Verifier{issuers: opts.Issuers, now: now, cancel: cancel, algorithms: map[string]jwa.SignatureAlgorithm{},
		cache: newTokenCache(opts.CacheSize, opts.CacheTTL)}
	for _, name := range AllowedAlgorithms {
		if alg, ok := jwa.LookupSignatureAlgorithm(name); ok {
			v.algorithms[name] = alg
		}
	}
	v.keys, v.initErr = newKeySource(ctx, opts.HTTPClient, now, opts.MinRefreshInterval)
	return v
}

// Close stops the JWKS refreshes. Verify fails after Close.
func (v *Verifier) Close() error {
	v.cancel()
	if v.keys != nil {
		return v.keys.close()
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidToken}, args...)...)
}

// LooksLikeJWT reports whether token has the shape of a compact JWS: three
// non-empty base64url segments. It says nothing about validity; ingress uses
// it to tell JWTs from API keys.
func LooksLikeJWT(token string) bool {
	if len(token) > maxTokenBytes || strings.Count(token, ".") != 2 {
		return false
	}
	for _, seg := range strings.Split(token, ".") {
		if seg == "" {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// header is the part of the protected header read before verification.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// registered claims are never tenant claims.
var registered = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "azp", "nonce"}

// Verify checks token and returns its user. In order: the token is parsed
// without trusting it; the tenant is read from a string claim (the claim
// configured for its iss, when the IssuerSource is a ClaimSource); that
// tenant's issuers are loaded and the token's iss must be one of them with
// that claim as its tenant claim; alg must be on the issuer's allow-list;
// the signature must verify with the issuer's key named by kid (an unknown
// kid refetches the JWKS, at most once per MinRefreshInterval); exp (which
// is required), nbf, iss and aud must hold with ClockSkew; sub must be
// present; and the role claim must map to a role. Errors wrap
// ErrInvalidToken and never contain the token.
//
// A token verified before is found in a bounded cache (by its SHA-256) and
// then only its time window, its tenant's trust in its issuer and its role
// mapping are checked again; see the package doc.
func (v *Verifier) Verify(ctx context.Context, token string) (User, error) {
	if v.initErr != nil {
		return User{}, fmt.Errorf("%w: verifier unavailable: %v", ErrInvalidToken, v.initErr)
	}
	if v.issuers == nil {
		return User{}, invalid("no issuers are configured")
	}
	if !LooksLikeJWT(token) {
		return User{}, invalid("not a compact JWS (three base64url segments)")
	}
	k := cacheKey(sha256.Sum256([]byte(token)))
	if u, ok := v.fromCache(ctx, k); ok {
		return u, nil
	}
	return v.verify(ctx, k, token)
}

// verify is Verify without the cache lookup; a success is cached under k.
func (v *Verifier) verify(ctx context.Context, k cacheKey, token string) (User, error) {
	parts := strings.SplitN(token, ".", 3)
	var h header
	if err := decodeSegment(parts[0], &h); err != nil {
		return User{}, invalid("header: %v", err)
	}
	alg, ok := v.algorithms[h.Alg]
	if !ok {
		return User{}, invalid("algorithm %q is not accepted (only asymmetric algorithms: %s)", h.Alg, strings.Join(AllowedAlgorithms, ", "))
	}
	var claims map[string]json.RawMessage
	if err := decodeSegment(parts[1], &claims); err != nil {
		return User{}, invalid("claims: %v", err)
	}
	var iss string
	if err := json.Unmarshal(claims["iss"], &iss); err != nil || iss == "" {
		return User{}, invalid("iss claim missing or not a string")
	}
	id, is, err := v.trustedIssuer(ctx, claims, iss)
	if err != nil {
		return User{}, err
	}
	if !slices.Contains(is.Algorithms, h.Alg) {
		return User{}, invalid("algorithm %s is not accepted for issuer %q (allowed: %s)", h.Alg, is.Issuer, strings.Join(is.Algorithms, ", "))
	}
	key, err := v.keys.key(ctx, is.JWKSURL, h.Kid, alg)
	if err != nil {
		return User{}, err
	}
	v.cache.verifications.Add(1)
	tok, err := jwt.ParseString(token,
		jwt.WithKey(alg, key),
		jwt.WithValidate(true),
		jwt.WithIssuer(is.Issuer),
		jwt.WithAudience(is.Audience),
		jwt.WithRequiredClaim("exp"),
		jwt.WithAcceptableSkew(ClockSkew),
		jwt.WithClock(jwt.ClockFunc(v.now)),
	)
	if err != nil {
		return User{}, invalid("%s", reason(err))
	}
	sub, ok := tok.Subject()
	if !ok || sub == "" {
		return User{}, invalid("sub claim missing")
	}
	roles, err := roleValues(is, claims[is.RoleClaim])
	if err != nil {
		return User{}, err
	}
	role, ok := mapValues(is, roles)
	if !ok {
		return User{}, invalid("role claim %q maps to no role (configure role_map)", is.RoleClaim)
	}
	u := User{Tenant: id, Issuer: is.Issuer, Subject: sub, Role: role}
	exp, _ := tok.Expiration() // required above
	notBefore, _ := tok.NotBefore()
	if iat, ok := tok.IssuedAt(); ok {
		u.IssuedAt = iat.UTC()
		if iat.After(notBefore) {
			notBefore = iat // jwx refuses iat in the future with the same rule as nbf
		}
	}
	v.remember(k, u, is, h.Alg, roles, exp, notBefore)
	return u, nil
}

// trustedIssuer finds the tenant the token names and the issuer
// configuration of that tenant matching iss whose tenant claim is the claim
// that named it. The same error is returned whether the tenant does not
// exist or does not trust the issuer, so tokens cannot probe for tenants.
func (v *Verifier) trustedIssuer(ctx context.Context, claims map[string]json.RawMessage, iss string) (tenant.ID, Issuer, error) {
	names, err := v.tenantClaims(ctx, claims, iss)
	if err != nil {
		return tenant.ID{}, Issuer{}, err
	}
	tried := 0
	for _, name := range names {
		var s string
		if err := json.Unmarshal(claims[name], &s); err != nil {
			continue // only a JSON string can name a tenant
		}
		id, err := tenant.Parse(s)
		if err != nil {
			continue
		}
		if tried++; tried > maxTenantCandidates {
			break
		}
		list, err := v.issuers.Issuers(ctx, id)
		if err != nil {
			return tenant.ID{}, Issuer{}, fmt.Errorf("%w: load issuers: %v", ErrInvalidToken, err)
		}
		for _, is := range list {
			is = is.WithDefaults()
			if is.Issuer != iss || is.TenantClaim != name {
				continue
			}
			// The source may be a team's own: an issuer it should not
			// have handed out (plain-http JWKS off loopback, no audience)
			// verifies nothing.
			if err := is.Validate(); err != nil {
				return tenant.ID{}, Issuer{}, fmt.Errorf("%w: tenant %s trusts an issuer that is not valid: %v", ErrInvalidToken, id, err)
			}
			return id, is, nil
		}
	}
	if tried == 0 {
		return tenant.ID{}, Issuer{}, invalid("no tenant claim: the claim naming the tenant must be a string holding a tenant id")
	}
	return tenant.ID{}, Issuer{}, invalid("issuer %q is not trusted by a tenant named in its tenant claim (a JSON string)", iss)
}

// tenantClaims returns the claims of the token that may name its tenant, in
// the order to try them: the claims configured for iss when the issuer
// source can tell (ClaimSource), else the string claims other than the
// registered ones, "tenant" first.
func (v *Verifier) tenantClaims(ctx context.Context, claims map[string]json.RawMessage, iss string) ([]string, error) {
	if cs, ok := v.issuers.(ClaimSource); ok {
		configured, err := cs.TenantClaims(ctx, iss)
		if err != nil {
			return nil, fmt.Errorf("%w: load tenant claims: %v", ErrInvalidToken, err)
		}
		names := make([]string, 0, len(configured))
		for _, name := range configured {
			if _, ok := claims[name]; ok && !slices.Contains(registered, name) {
				names = append(names, name)
			}
		}
		if len(names) == 0 {
			return nil, invalid("issuer %q is not trusted by a tenant named in its tenant claim (no tenant trusts it, or the token lacks the claim configured for it)", iss)
		}
		return names, nil
	}
	names := make([]string, 0, len(claims))
	for name := range claims {
		if name != "tenant" && !slices.Contains(registered, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if _, ok := claims["tenant"]; ok {
		names = append([]string{"tenant"}, names...)
	}
	return names, nil
}

// roleValues reads the role claim: a string, or an array of strings. A
// missing claim is refused.
func roleValues(is Issuer, raw json.RawMessage) ([]string, error) {
	if raw == nil {
		return nil, invalid("role claim %q missing", is.RoleClaim)
	}
	var values []string
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		values = []string{one}
	} else if err := json.Unmarshal(raw, &values); err != nil {
		return nil, invalid("role claim %q must be a string or an array of strings", is.RoleClaim)
	}
	return values, nil
}

// mapValues maps role claim values (the highest mapped role wins) through
// the issuer's RoleMap (or role names as is, with an empty RoleMap).
// Unmapped values are ignored; false if none maps: no token gets a role its
// issuer configuration does not grant.
func mapValues(is Issuer, values []string) (Role, bool) {
	var best Role
	for _, val := range values {
		name := val
		if len(is.RoleMap) > 0 {
			m, ok := is.RoleMap[val]
			if !ok {
				continue
			}
			name = m
		}
		r, err := ParseRole(name)
		if err != nil {
			continue
		}
		if best == "" || r.Allows(best) {
			best = r
		}
	}
	return best, best != ""
}

func decodeSegment(seg string, dst any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return errors.New("not a JSON object")
	}
	return nil
}

// reason says which check failed, without the token.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return "token expired"
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return "token not valid yet (nbf)"
	case errors.Is(err, jwt.InvalidIssuerError()):
		return "wrong issuer"
	case errors.Is(err, jwt.InvalidAudienceError()):
		return "wrong audience"
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return "missing exp claim"
	case errors.Is(err, jwt.ValidateError()):
		return "claims invalid"
	}
	return "signature verification failed"
}
