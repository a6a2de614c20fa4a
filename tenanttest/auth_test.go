package tenanttest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

func TestTheAuthenticatorAcceptsTheEnvsTenantsAndNoOneElse(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	acme := env.Tenant(t, "acme", store.Pooled)
	auth := env.Authenticator("reader")

	t.Run("a tenant the Env made is that tenant's key with the role", func(t *testing.T) {
		p, err := auth.Authenticate(context.Background(), tenanttest.Token(acme))
		want := ingress.Principal{Kind: ingress.KindTenantKey, ID: "tenanttest", Tenant: tenant.MustParse("acme"), Role: "reader"}
		if err != nil || p != want {
			t.Fatalf("Authenticate = %#v, %v; want %#v", p, err, want)
		}
	})
	for name, token := range map[string]string{
		"a tenant the Env did not make": "globex",
		"a token that is no tenant id":  "Bearer acme",
		"no token":                      tenanttest.Token(context.Background()),
	} {
		t.Run(name+" is unauthenticated", func(t *testing.T) {
			if p, err := auth.Authenticate(context.Background(), token); !errors.Is(err, ingress.ErrUnauthenticated) {
				t.Fatalf("Authenticate(%q) = %+v, %v; want ingress.ErrUnauthenticated", token, p, err)
			}
		})
	}
}

func TestTheAuthenticatorDrivesARealGateAsEachTenant(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	gate, err := ingress.New(ingress.Config{Authenticator: env.Authenticator("reader")})
	if err != nil {
		t.Fatal(err)
	}
	api := http.NewServeMux()
	api.Handle("GET /whoami", gate.Data("record.read", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := tenant.FromContext(r.Context())
		fmt.Fprint(w, id)
	})))
	api.Handle("POST /notes", gate.Data("record.write", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})))
	serve := func(ctx context.Context, method, path string) (int, string) {
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer "+tenanttest.Token(ctx))
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, name := range []string{"acme", "globex"} {
		ctx := env.Tenant(t, name, store.Database)
		if code, body := serve(ctx, "GET", "/whoami"); code != http.StatusOK || body != name {
			t.Errorf("%s: GET /whoami = %d %q, want 200 %q", name, code, body, name)
		}
		// The role is the one given: the default policy lets a reader read only.
		if code, _ := serve(ctx, "POST", "/notes"); code != http.StatusForbidden {
			t.Errorf("%s: a reader's POST = %d, want 403", name, code)
		}
	}
	if code, _ := serve(context.Background(), "GET", "/whoami"); code != http.StatusUnauthorized {
		t.Errorf("no tenant: GET /whoami = %d, want 401", code)
	}
}
