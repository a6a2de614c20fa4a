package ingress_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// A team's own credential scheme: here two static tokens, each of one
// tenant. Handlers behind the gate learn the tenant from the context, never
// from the request.
func Example() {
	tokens := map[string]ingress.Principal{
		"token-of-acme":   {Kind: ingress.KindTenantKey, ID: "k1", Tenant: tenant.MustParse("acme"), Role: "reader"},
		"token-of-globex": {Kind: ingress.KindTenantKey, ID: "k2", Tenant: tenant.MustParse("globex"), Role: "reader"},
	}
	gate, err := ingress.New(ingress.Config{
		Authenticator: ingress.AuthenticatorFunc(func(_ context.Context, token string) (ingress.Principal, error) {
			if p, ok := tokens[token]; ok {
				return p, nil
			}
			return ingress.Principal{}, ingress.ErrUnauthenticated
		}),
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /whoami", gate.Data("record.read", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := tenant.FromContext(r.Context())
		fmt.Fprintf(w, "tenant %s", id)
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(token, actAs string) {
		req, _ := http.NewRequest("GET", srv.URL+"/whoami", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if actAs != "" {
			req.Header.Set(ingress.ActAsHeader, actAs)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			body = []byte(resp.Header.Get("Content-Type"))
		}
		fmt.Println(resp.StatusCode, string(body))
	}
	get("token-of-acme", "")
	get("token-of-globex", "")
	get("token-of-acme", "globex") // a tenant credential cannot act as another tenant
	get("", "")
	get("forged", "")
	// Output:
	// 200 tenant acme
	// 200 tenant globex
	// 403 application/problem+json
	// 401 application/problem+json
	// 401 application/problem+json
}
