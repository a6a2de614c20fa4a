package identity_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/bulkhead-dev/bulkhead/identity"
)

func TestIssuerValidation(t *testing.T) {
	ok := identity.Issuer{Issuer: "https://idp.example", Audience: "bulkhead"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid issuer refused: %v", err)
	}
	for name, mod := range map[string]func(*identity.Issuer){
		"plain http to a public host":      func(i *identity.Issuer) { i.Issuer = "http://idp.example" },
		"http jwks url to a public host":   func(i *identity.Issuer) { i.JWKSURL = "http://idp.example/jwks" },
		"relative issuer":                  func(i *identity.Issuer) { i.Issuer = "idp.example" },
		"issuer with user info":            func(i *identity.Issuer) { i.Issuer = "https://u:p@idp.example" },
		"issuer with a query":              func(i *identity.Issuer) { i.Issuer = "https://idp.example/?x=1" },
		"empty audience":                   func(i *identity.Issuer) { i.Audience = "" },
		"tenant claim with a space":        func(i *identity.Issuer) { i.TenantClaim = "my tenant" },
		"tenant claim is a registered one": func(i *identity.Issuer) { i.TenantClaim = "sub" },
		"role claim equals tenant claim":   func(i *identity.Issuer) { i.RoleClaim = "tenant" },
		"role map to a non-role":           func(i *identity.Issuer) { i.RoleMap = map[string]string{"x": "operator"} },
		"alg none":                         func(i *identity.Issuer) { i.Algorithms = []string{"none"} },
		"HMAC":                             func(i *identity.Issuer) { i.Algorithms = []string{"RS256", "HS256"} },
	} {
		t.Run(name+" is refused", func(t *testing.T) {
			is := ok
			mod(&is)
			if err := is.Validate(); !errors.Is(err, identity.ErrInvalidIssuer) {
				t.Fatalf("got %v, want ErrInvalidIssuer", err)
			}
		})
	}
	for _, u := range []string{"http://localhost:9999", "http://127.0.0.1:1234/x", "http://[::1]:80"} {
		is := ok
		is.Issuer = u
		if err := is.Validate(); err != nil {
			t.Errorf("loopback http issuer %s refused: %v", u, err)
		}
	}
}

// TestIssuerJSON pins the JSON form of an Issuer: the control plane's
// PUT and GET /v1/admin/tenants/{id}/issuers and the catalog's stored
// form use it.
func TestIssuerJSON(t *testing.T) {
	is := identity.Issuer{Issuer: "https://idp.example", Audience: "api"}.WithDefaults()
	is.RoleMap = map[string]string{"Admins": "admin"}
	b, err := json.Marshal(is)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"issuer":"https://idp.example","audience":"api","tenant_claim":"tenant","role_claim":"role",` +
		`"jwks_url":"https://idp.example/.well-known/jwks.json","role_map":{"Admins":"admin"},"algorithms":["RS256","ES256","EdDSA"]}`
	if string(b) != want {
		t.Fatalf("JSON:\n got %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(identity.Issuer{Issuer: "https://idp.example", Audience: "api"})
	if want := `{"issuer":"https://idp.example","audience":"api"}`; string(b) != want {
		t.Fatalf("JSON without defaults: %s, want %s", b, want)
	}
}

func TestRoles(t *testing.T) {
	for _, tt := range []struct {
		have, need identity.Role
		allowed    bool
	}{
		{identity.RoleAdmin, identity.RoleReader, true},
		{identity.RoleWriter, identity.RoleWriter, true},
		{identity.RoleReader, identity.RoleWriter, false},
		{"", identity.RoleReader, false},
		{"operator", identity.RoleReader, false},
	} {
		if got := tt.have.Allows(tt.need); got != tt.allowed {
			t.Errorf("%q.Allows(%q) = %v, want %v", tt.have, tt.need, got, tt.allowed)
		}
	}
	if r, err := identity.ParseRole("writer"); err != nil || r != identity.RoleWriter {
		t.Fatalf("ParseRole(writer) = %q, %v", r, err)
	}
	if _, err := identity.ParseRole("Admin"); !errors.Is(err, identity.ErrInvalidRole) {
		t.Fatalf("ParseRole(Admin) = %v, want ErrInvalidRole", err)
	}
}
