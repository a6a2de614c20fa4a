package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Principal kinds, as the policy names them.
const (
	kindOperator   = policy.KindOperator
	kindSupport    = policy.KindSupport
	kindTenantKey  = policy.KindTenantKey
	kindTenantUser = policy.KindTenantUser
)

// actAsHeader names the tenant a support agent acts as on the data plane.
const actAsHeader = "Bulkhead-Act-As-Tenant"

// principal is who a request's credential speaks for (policy.Principal's
// fields). Tenant is set for tenant principals only and comes from the
// credential alone.
type principal struct {
	Kind   string
	ID     string
	Tenant tenant.ID
	Role   string
}

// policy converts p for the policy engine.
func (p principal) policy() policy.Principal {
	return policy.Principal{Kind: p.Kind, ID: p.ID, Tenant: p.Tenant, Role: p.Role}
}

func (p principal) isTenant() bool { return p.Kind == kindTenantKey || p.Kind == kindTenantUser }

// maxPrincipalName bounds String (the audit log's principal field).
const maxPrincipalName = 256

// String names the principal in the audit log: kind, id and, for tenant
// principals, their tenant. Never a secret. Control characters become '?'
// and an over-long name (a JWT's issuer and subject are the caller's) is
// cut and suffixed with a digest of the whole, so it stays distinct.
func (p principal) String() string {
	if p.Kind == "" {
		return "anonymous"
	}
	s := p.Kind + ":" + p.ID
	if p.isTenant() {
		s += "@" + p.Tenant.String()
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
	if len(s) > maxPrincipalName {
		sum := sha256.Sum256([]byte(s))
		cut := maxPrincipalName - 40
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…#" + hex.EncodeToString(sum[:16])
	}
	return s
}

// authenticate is the one ingress step that turns the request's single
// "Authorization: Bearer" credential into a principal: the operator token,
// a support agent token (bks_…), a JWT (three base64url segments) or a
// tenant API key (bk_…). Errors are *apiError or catalog sentinels
// (ErrUnauthenticated, ErrSuspended); a tenant whose credential is valid
// but who is suspended gets catalog.ErrSuspended, for keys and JWTs alike.
func (s *Server) authenticate(r *http.Request) (principal, error) {
	tok := bearerToken(r)
	if tok == "" {
		return principal{}, unauthenticated(detailUnauth, false)
	}
	ctx := r.Context()
	switch {
	case operatorMatch(s.opHash, tok):
		return principal{Kind: kindOperator, ID: "operator", Role: "operator"}, nil
	case catalog.IsAgentToken(tok):
		a, err := s.catalog.AuthenticateAgent(ctx, tok)
		if err != nil {
			return principal{}, err
		}
		return principal{Kind: kindSupport, ID: a.ID, Role: "support"}, nil
	case s.jwt.looksLikeJWT(tok):
		u, err := s.jwt.verify(ctx, tok)
		if err != nil {
			return principal{}, catalog.ErrUnauthenticated
		}
		if err := s.tenantUsable(ctx, u.Tenant); err != nil {
			return principal{}, err
		}
		return u, nil
	}
	k, err := s.catalog.Authenticate(ctx, tok)
	if err != nil {
		return principal{}, err
	}
	return principal{Kind: kindTenantKey, ID: k.KeyID, Tenant: k.Tenant, Role: string(k.Role)}, nil
}

// tenantUsable checks the state of a tenant named by a verified JWT:
// suspended → ErrSuspended, anything but active → ErrUnauthenticated.
func (s *Server) tenantUsable(ctx context.Context, id tenant.ID) error {
	st, err := s.catalog.TenantState(ctx, id)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return catalog.ErrUnauthenticated
	case err != nil:
		return err
	case st == catalog.Suspended:
		return catalog.ErrSuspended
	case st != catalog.Active:
		return catalog.ErrUnauthenticated
	}
	return nil
}
