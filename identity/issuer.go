package identity

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// IssuerSource gives the issuers a tenant trusts, with defaults filled in
// (Issuer.WithDefaults). The catalog implements it
// ((*catalog.Catalog).Issuers, cached and invalidated across instances);
// a team may implement it over its own configuration. A Verifier asks it
// on every Verify, so it should be cheap.
type IssuerSource interface {
	// Issuers returns the issuers tenant id trusts; none for an unknown
	// tenant.
	Issuers(ctx context.Context, id tenant.ID) ([]Issuer, error)
}

// ClaimSource is an optional capability of an IssuerSource: the tenant
// claims configured for an issuer by the tenants that trust it. With it, a
// Verifier reads a token's tenant from exactly those claims, whatever
// other claims the token holds; without it, a Verifier tries the token's
// string claims ("tenant" first, then by name), at most
// maxTenantCandidates of them. The catalog implements it.
type ClaimSource interface {
	// TenantClaims returns the tenant claims configured for issuer (none
	// if no tenant trusts it).
	TenantClaims(ctx context.Context, issuer string) ([]string, error)
}

// IssuerSourceFunc adapts a function to an IssuerSource.
type IssuerSourceFunc func(ctx context.Context, id tenant.ID) ([]Issuer, error)

// Issuers implements IssuerSource.
func (f IssuerSourceFunc) Issuers(ctx context.Context, id tenant.ID) ([]Issuer, error) {
	return f(ctx, id)
}

// ErrInvalidIssuer: an issuer configuration is malformed or unsafe.
var ErrInvalidIssuer = errors.New("invalid issuer")

// Issuer is one OIDC/JWT issuer a tenant trusts; its JSON form is the
// one the control plane stores and shows. A token is accepted for
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

// registeredClaims may not be used as tenant or role claims.
var registeredClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "azp", "nonce"}

var claimName = regexp.MustCompile(`^[A-Za-z0-9_:/.\-]{1,128}$`)

// WithDefaults returns is with defaults filled in (TenantClaim, RoleClaim,
// JWKSURL, Algorithms), as IssuerSources should return issuers.
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
