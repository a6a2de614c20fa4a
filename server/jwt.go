package server

import (
	"context"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/identity"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// jwtVerifier verifies tenant users' JWTs.
type jwtVerifier interface {
	looksLikeJWT(token string) bool
	verify(ctx context.Context, token string) (principal, error)
	Close() error
}

// identityVerifier adapts identity.Verifier: a verified token is the
// tenant_user (issuer|subject) of the tenant its claim names and that
// tenant's issuer list trusts.
type identityVerifier struct{ v *identity.Verifier }

func newJWTVerifier(cat *catalog.Catalog, opts Options) jwtVerifier {
	return identityVerifier{v: identity.NewVerifier(identity.VerifierOptions{
		Issuers:    cat.Issuers,
		HTTPClient: opts.JWKSClient,
		Now:        opts.Now,
	})}
}

func (identityVerifier) looksLikeJWT(token string) bool { return identity.LooksLikeJWT(token) }

func (iv identityVerifier) verify(ctx context.Context, token string) (principal, error) {
	u, err := iv.v.Verify(ctx, token)
	if err != nil {
		return principal{}, err
	}
	return principal{Kind: kindTenantUser, ID: u.Issuer + "|" + u.Subject, Tenant: u.Tenant, Role: string(u.Role)}, nil
}

func (iv identityVerifier) Close() error { return iv.v.Close() }

// setIssuers: PUT /v1/admin/tenants/{id}/issuers with a JSON list of
// catalog.Issuer → 200 with the stored list (defaults filled in).
func (s *Server) setIssuers(w http.ResponseWriter, r *http.Request) {
	id, err := pathTenant(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var list []catalog.Issuer
	if err := decodeJSON(r, &list); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.catalog.SetIssuers(r.Context(), id, list); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.issuers(w, r, id)
}

// getIssuers: GET /v1/admin/tenants/{id}/issuers → {"items":[issuer...]}.
func (s *Server) getIssuers(w http.ResponseWriter, r *http.Request) {
	id, ok := s.existingTenant(w, r)
	if !ok {
		return
	}
	s.issuers(w, r, id)
}

func (s *Server) issuers(w http.ResponseWriter, r *http.Request, id tenant.ID) {
	list, err := s.catalog.Issuers(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []catalog.Issuer{}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"items": list})
}
