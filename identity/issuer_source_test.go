package identity_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/bulkhead-dev/bulkhead/identity"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// An issuer source that is not the catalog (a team's own) may hand out an
// issuer the catalog would refuse: the verifier checks it too, and a token
// of that issuer verifies nothing.
func TestIssuersFromATeamsSourceAreValidated(t *testing.T) {
	w := newWorld(t)
	good := identity.Issuer{Issuer: w.a.issuer(), Audience: "bulkhead", TenantClaim: "tenant", RoleMap: map[string]string{"bh-writers": "writer"}}.WithDefaults()
	for _, tc := range []struct {
		name string
		is   identity.Issuer
		ok   bool
	}{
		{"valid", good, true},
		{"plain-http JWKS off loopback", func() identity.Issuer { is := good; is.JWKSURL = "http://keys.example.com/jwks.json"; return is }(), false},
		{"plain-http JWKS on a reachable host", func() identity.Issuer { is := good; is.JWKSURL = plainHTTPJWKS(t, w.a); return is }(), false},
		{"no audience", func() identity.Issuer { is := good; is.Audience = ""; return is }(), false},
		{"a symmetric algorithm", func() identity.Issuer { is := good; is.Algorithms = []string{"HS256"}; return is }(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := identity.NewVerifier(identity.VerifierOptions{
				Issuers: identity.IssuerSourceFunc(func(context.Context, tenant.ID) ([]identity.Issuer, error) {
					return []identity.Issuer{tc.is}, nil
				}),
				Now: func() time.Time { return w.now },
			})
			defer v.Close()
			_, err := v.Verify(context.Background(), w.a.sign(t, "a-rsa", jwa.RS256(), w.baseA))
			if tc.ok && err != nil {
				t.Fatalf("a valid issuer's token was refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, identity.ErrInvalidToken) {
				t.Fatalf("a token of an invalid issuer: %v, want ErrInvalidToken", err)
			}
		})
	}
}

// plainHTTPJWKS serves p's JWKS over plain http on a non-loopback address
// of this machine, where a network attacker could replace the keys.
func plainHTTPJWKS(t *testing.T, p *idp) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ip, ok := a.(*net.IPNet)
		if !ok || ip.IP.IsLoopback() || ip.IP.To4() == nil {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.IP.String(), "0"))
		if err != nil {
			continue
		}
		srv := &http.Server{Handler: p.srv.Config.Handler}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return "http://" + ln.Addr().String() + "/.well-known/jwks.json"
	}
	t.Skip("this machine has no non-loopback IPv4 address to serve a plain-http JWKS on")
	return ""
}

func TestLooksLikeJWT(t *testing.T) {
	for s, want := range map[string]bool{
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln":          true,
		"bk_abcdefghijklmnopqrst_" + strings.Repeat("A", 43): false,
		"a.b":     false,
		"a..c":    false,
		"a.b.c.d": false,
		"a.b+.c":  false,
	} {
		if got := identity.LooksLikeJWT(s); got != want {
			t.Errorf("LooksLikeJWT(%q) = %v, want %v", s, got, want)
		}
	}
}

// BenchmarkVerify measures Verify with a warm JWKS cache and a warm
// catalog cache, with the verified-token cache off (verify-uncached) and
// warm (verify-cached), against the bare jwx parse-and-validate of the same
// token in the same run (the library's floor).
