// Package catalogauth authenticates the credentials a Bulkhead catalog
// holds — tenant API keys, support agents and tenant users' JWTs from the
// issuers a tenant trusts — for the ingress. The server uses exactly these;
// a team that keeps its tenants and keys in a catalog uses them too:
//
//	gate, err := ingress.New(ingress.Config{
//		Authenticator: catalogauth.All(cat, operatorHash, verifier),
//		Policy:        engine,
//		Grants:        cat,
//	})
//
// Each store is an interface declared here; *catalog.Catalog satisfies
// them all.
package catalogauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/identity"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// KeyStore resolves tenant API keys.
type KeyStore interface {
	Authenticate(ctx context.Context, token string) (catalog.Principal, error)
}

// AgentStore resolves support agent tokens.
type AgentStore interface {
	AuthenticateAgent(ctx context.Context, token string) (catalog.Agent, error)
}

// AnalystStore resolves analyst tokens.
type AnalystStore interface {
	AuthenticateAnalyst(ctx context.Context, token string) (catalog.Analyst, error)
}

// Incarnations tells a tenant's state and when its current incarnation
// began (the last creation of its id); *catalog.Catalog is one. JWTs
// issued before that instant are refused (see JWT). A source that keeps
// no history (a static list of tenants) returns the zero time.
type Incarnations interface {
	Incarnation(ctx context.Context, id tenant.ID) (catalog.State, time.Time, error)
}

// Catalog is every store All needs.
type Catalog interface {
	KeyStore
	AgentStore
	AnalystStore
	Incarnations
}

// TokenVerifier verifies a tenant user's JWT; *identity.Verifier is one.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (identity.User, error)
}

// All authenticates, in this order, the operator token whose SHA-256 is
// operatorHash, support agents (bks_…), analysts (bka_…), tenant users'
// JWTs (when v is not nil) and tenant API keys (bk_…); anything else is
// unauthenticated.
func All(cat Catalog, operatorHash [32]byte, v TokenVerifier) ingress.Authenticator {
	auths := []ingress.Authenticator{ingress.OperatorToken(operatorHash), Agents(cat), Analysts(cat)}
	if v != nil {
		auths = append(auths, JWT(v, cat))
	}
	return ingress.Chain(append(auths, Keys(cat))...)
}

// Keys authenticates tenant API keys. It claims every token (put it last
// in a chain): one that is not a valid key is unauthenticated.
func Keys(ks KeyStore) ingress.Authenticator {
	return ingress.AuthenticatorFunc(func(ctx context.Context, token string) (ingress.Principal, error) {
		k, err := ks.Authenticate(ctx, token)
		if err != nil {
			return ingress.Principal{}, translate(err)
		}
		return ingress.Principal{Kind: ingress.KindTenantKey, ID: k.KeyID, Tenant: k.Tenant, Role: string(k.Role)}, nil
	})
}

// Agents authenticates support agents' tokens (bks_…).
func Agents(as AgentStore) ingress.Authenticator {
	return ingress.AuthenticatorFunc(func(ctx context.Context, token string) (ingress.Principal, error) {
		if !catalog.IsAgentToken(token) {
			return ingress.Principal{}, ingress.ErrNotMine
		}
		a, err := as.AuthenticateAgent(ctx, token)
		if err != nil {
			return ingress.Principal{}, translate(err)
		}
		return ingress.Principal{Kind: ingress.KindSupport, ID: a.ID, Role: "support"}, nil
	})
}

// Analysts authenticates analysts' tokens (bka_…): principals of kind
// analyst, who reach only the analytics plane.
func Analysts(as AnalystStore) ingress.Authenticator {
	return ingress.AuthenticatorFunc(func(ctx context.Context, token string) (ingress.Principal, error) {
		if !catalog.IsAnalystToken(token) {
			return ingress.Principal{}, ingress.ErrNotMine
		}
		a, err := as.AuthenticateAnalyst(ctx, token)
		if err != nil {
			return ingress.Principal{}, translate(err)
		}
		return ingress.Principal{Kind: ingress.KindAnalyst, ID: a.ID, Role: "analyst"}, nil
	})
}

// JWT authenticates tenant users' JWTs (three base64url segments) with v:
// the principal is the tenant_user issuer|subject of the tenant the token
// names, if that tenant is active (a suspended one is refused as such).
//
// A token must have been issued in the tenant's current incarnation: its
// iat must not be before the second the tenant's id was last created, so a
// token minted for a tenant that was deleted and created again is refused.
// A token without iat cannot show when it was issued and is refused too
// (fail closed). The check is not optional: ts must say when each tenant
// began.
func JWT(v TokenVerifier, ts Incarnations) ingress.Authenticator {
	return ingress.AuthenticatorFunc(func(ctx context.Context, token string) (ingress.Principal, error) {
		if !identity.LooksLikeJWT(token) {
			return ingress.Principal{}, ingress.ErrNotMine
		}
		u, err := v.Verify(ctx, token)
		if err != nil {
			return ingress.Principal{}, fmt.Errorf("%w: %w", ingress.ErrUnauthenticated, err)
		}
		st, since, err := ts.Incarnation(ctx, u.Tenant)
		if err == nil && !issuedIn(u.IssuedAt, since) {
			return ingress.Principal{}, fmt.Errorf("%w: the token was not issued in the tenant's current incarnation (iat missing or before %s)",
				ingress.ErrUnauthenticated, since.Format(time.RFC3339))
		}
		switch {
		case errors.Is(err, catalog.ErrNotFound):
			return ingress.Principal{}, ingress.ErrUnauthenticated
		case err != nil:
			return ingress.Principal{}, err
		case st == catalog.Suspended:
			return ingress.Principal{}, ingress.ErrSuspended
		case st != catalog.Active:
			return ingress.Principal{}, ingress.ErrUnauthenticated
		}
		return ingress.Principal{Kind: ingress.KindTenantUser, ID: u.Issuer + "|" + u.Subject, Tenant: u.Tenant, Role: string(u.Role)}, nil
	})
}

// issuedIn reports whether a token issued at iat (whole seconds; zero if
// the token has none) belongs to an incarnation that began at since.
func issuedIn(iat, since time.Time) bool {
	return !iat.IsZero() && !iat.Before(since.Truncate(time.Second))
}

// translate maps the catalog's credential errors to the ingress's.
func translate(err error) error {
	switch {
	case errors.Is(err, catalog.ErrSuspended):
		return fmt.Errorf("%w: %w", ingress.ErrSuspended, err)
	case errors.Is(err, catalog.ErrUnauthenticated):
		return fmt.Errorf("%w: %w", ingress.ErrUnauthenticated, err)
	}
	return err
}
