package tenanttest

import (
	"context"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Authenticator returns an ingress.Authenticator for a gate in front of
// the code under test: it accepts as a bearer token the id of a tenant
// the Env made (Token gives it), as the principal {Kind:
// ingress.KindTenantKey, ID: "tenanttest", Tenant: that tenant, Role:
// role}. Any other token is ingress.ErrUnauthenticated. With it a test
// drives a service's real handlers, gate and policy included, as the
// tenants Isolated makes:
//
//	gate, err := ingress.New(ingress.Config{Authenticator: env.Authenticator("writer")})
//	api := svc.Handler(env.Router, gate)
//	req := httptest.NewRequest("GET", "/notes", nil)
//	req.Header.Set("Authorization", "Bearer "+tenanttest.Token(ctx)) // ctx from Env.Tenant or Isolated
func (e *Env) Authenticator(role string) ingress.Authenticator {
	return ingress.AuthenticatorFunc(func(ctx context.Context, token string) (ingress.Principal, error) {
		id, err := tenant.Parse(token)
		if err != nil {
			return ingress.Principal{}, fmt.Errorf("%w: tenanttest: the token is not a tenant id", ingress.ErrUnauthenticated)
		}
		if _, err := e.Placement(ctx, id); err != nil {
			return ingress.Principal{}, fmt.Errorf("%w: %w", ingress.ErrUnauthenticated, err)
		}
		return ingress.Principal{Kind: ingress.KindTenantKey, ID: "tenanttest", Tenant: id, Role: role}, nil
	})
}

// Token returns the bearer token Env.Authenticator accepts for the tenant
// in ctx (a context from Env.Tenant or Isolated): the tenant's id. Without
// a tenant in ctx it returns "", which no Authenticator accepts.
func Token(ctx context.Context) string {
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return ""
	}
	return id.String()
}
