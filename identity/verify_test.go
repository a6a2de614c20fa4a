package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/identity"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// idp is a real identity provider's key side: private keys it signs with
// and an httptest server publishing their public halves as a JWKS.
type idp struct {
	srv  *httptest.Server
	hits atomic.Int64

	mu   sync.Mutex // guards pub
	pub  jwk.Set
	priv map[string]jwk.Key // kid → private key (signing only happens in tests)
}

func newIDP(t testing.TB) *idp {
	t.Helper()
	p := &idp{pub: jwk.NewSet(), priv: map[string]jwk.Key{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		p.hits.Add(1)
		p.mu.Lock()
		b, err := json.Marshal(p.pub)
		p.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) issuer() string { return p.srv.URL }

// sharedRSA is generated once: RSA key generation is slow under -race.
var sharedRSA = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// addKey publishes raw's public key under kid (publish false keeps it
// private: a key the issuer never announced).
func (p *idp) addKey(t testing.TB, kid string, raw any, publish bool) {
	t.Helper()
	k, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.priv[kid] = k
	if publish {
		pk, err := k.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.pub.AddKey(pk); err != nil {
			t.Fatal(err)
		}
	}
}

func (p *idp) sign(t testing.TB, kid string, alg jwa.SignatureAlgorithm, claims map[string]any) string {
	t.Helper()
	p.mu.Lock()
	k := p.priv[kid]
	p.mu.Unlock()
	tok := jwt.New()
	for name, v := range claims {
		if err := tok.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	b, err := jwt.Sign(tok, jwt.WithKey(alg, k))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// world is two tenants on a real catalog: acme trusts idpA (and, with the
// tenant in "org", idpC), globex trusts idpB.
type world struct {
	now              time.Time
	a, b, c          *idp
	cat              *catalog.Catalog
	v                *identity.Verifier
	acme, globex     tenant.ID
	baseA, baseB     map[string]any
	ecKey, rotateKey *ecdsa.PrivateKey
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), a: newIDP(t), b: newIDP(t), c: newIDP(t)}
	w.a.addKey(t, "a-rsa", sharedRSA(), true)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	w.ecKey = ec
	w.a.addKey(t, "a-ec", ec, true)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	w.b.addKey(t, "b-ed", ed, true)
	cEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	w.c.addKey(t, "c-ec", cEC, true)

	cat, err := catalog.Open(filepath.Join(t.TempDir(), "control.db"), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	w.cat = cat
	ctx := context.Background()
	noop := func(context.Context, tenant.ID, store.Placement) error { return nil }
	for _, id := range []string{"acme", "globex"} {
		if _, err := cat.CreateTenant(ctx, catalog.Tenant{ID: tenant.MustParse(id), Placement: store.Placement{Mode: store.Pooled, Shard: "local"}}, noop); err != nil {
			t.Fatal(err)
		}
	}
	w.acme, w.globex = tenant.MustParse("acme"), tenant.MustParse("globex")
	if err := cat.SetIssuers(ctx, w.acme, []identity.Issuer{
		{Issuer: w.a.issuer(), Audience: "bulkhead", RoleMap: map[string]string{"bh-admins": "admin", "bh-writers": "writer", "bh-readers": "reader"}},
		{Issuer: w.c.issuer(), Audience: "bulkhead", TenantClaim: "org", Algorithms: []string{"ES256"}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := cat.SetIssuers(ctx, w.globex, []identity.Issuer{{Issuer: w.b.issuer(), Audience: "globex-api"}}); err != nil {
		t.Fatal(err)
	}
	w.v = identity.NewVerifier(identity.VerifierOptions{Issuers: cat, Now: func() time.Time { return w.now }})
	t.Cleanup(func() { w.v.Close() })
	w.baseA = map[string]any{"iss": w.a.issuer(), "sub": "user-1", "aud": "bulkhead", "tenant": "acme", "role": "bh-writers",
		"email": "admin@globex.example", "exp": w.now.Add(time.Hour).Unix(), "iat": w.now.Unix()}
	w.baseB = map[string]any{"iss": w.b.issuer(), "sub": "user-9", "aud": "globex-api", "tenant": "globex", "role": "reader",
		"exp": w.now.Add(time.Hour).Unix()}
	return w
}

// with returns base changed by kv (a nil value deletes the claim).
func with(base map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestVerifyAcceptsValidTokens(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		token string
		want  identity.User
	}{
		{"RS256 from acme's issuer", w.a.sign(t, "a-rsa", jwa.RS256(), w.baseA),
			identity.User{Tenant: w.acme, Issuer: w.a.issuer(), Subject: "user-1", Role: catalog.RoleWriter}},
		{"ES256 from acme's issuer", w.a.sign(t, "a-ec", jwa.ES256(), w.baseA),
			identity.User{Tenant: w.acme, Issuer: w.a.issuer(), Subject: "user-1", Role: catalog.RoleWriter}},
		{"EdDSA from globex's issuer", w.b.sign(t, "b-ed", jwa.EdDSA(), w.baseB),
			identity.User{Tenant: w.globex, Issuer: w.b.issuer(), Subject: "user-9", Role: catalog.RoleReader}},
		{"an issuer with its own tenant claim", w.c.sign(t, "c-ec", jwa.ES256(), with(w.baseA, "iss", w.c.issuer(), "tenant", nil, "org", "acme", "role", "admin")),
			identity.User{Tenant: w.acme, Issuer: w.c.issuer(), Subject: "user-1", Role: catalog.RoleAdmin}},
		{"expired within the clock skew", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "exp", w.now.Add(-10*time.Second).Unix())),
			identity.User{Tenant: w.acme, Issuer: w.a.issuer(), Subject: "user-1", Role: catalog.RoleWriter}},
		{"audience in a list", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "aud", []string{"other", "bulkhead"})),
			identity.User{Tenant: w.acme, Issuer: w.a.issuer(), Subject: "user-1", Role: catalog.RoleWriter}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !identity.LooksLikeJWT(tc.token) {
				t.Fatal("LooksLikeJWT refused a JWT")
			}
			got, err := w.v.Verify(ctx, tc.token)
			if err != nil {
				t.Fatal(err)
			}
			got.IssuedAt = time.Time{} // TestVerifyReportsIssuedAt checks it
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestVerifyAttacks are the JWT attack tests: each token must be
// refused with ErrInvalidToken, and the error must not echo the token.
func TestVerifyAttacks(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	pubDER, _ := x509.MarshalPKIXPublicKey(&sharedRSA().PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hmacWith := func(secret []byte) string {
		tok := jwt.New()
		for k, v := range w.baseA {
			tok.Set(k, v)
		}
		b, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256(), secret))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	w.a.addKey(t, "never-published", sharedRSA(), false)
	strangerEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	w.b.addKey(t, "a-ec", strangerEC, false) // B signs with A's kid but its own key
	w.c.addKey(t, "c-rsa", sharedRSA(), true)

	for _, tc := range []struct{ name, token, why string }{
		{"alg none without signature", b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64(w.baseA) + ".", "not a compact JWS"},
		{"alg none with a junk signature", b64(map[string]string{"alg": "none"}) + "." + b64(w.baseA) + ".c2ln", `algorithm "none"`},
		{"alg missing", b64(map[string]string{"kid": "a-rsa"}) + "." + b64(w.baseA) + ".c2ln", `algorithm ""`},
		{"RS256→HS256 with the PEM public key as secret", hmacWith(pubPEM), `algorithm "HS256"`},
		{"RS256→HS256 with the DER public key as secret", hmacWith(pubDER), `algorithm "HS256"`},
		{"header alg RS256 over an HMAC signature", func() string {
			parts := strings.Split(hmacWith(pubPEM), ".")
			return b64(map[string]string{"alg": "RS256", "kid": "a-rsa"}) + "." + parts[1] + "." + parts[2]
		}(), "signature"},
		// idpC allows ES256 only; an RS256 token signed with a key it publishes is refused.
		{"alg the issuer does not allow", w.c.sign(t, "c-rsa", jwa.RS256(), with(w.baseA, "iss", w.c.issuer(), "tenant", nil, "org", "acme")), "not accepted for issuer"},
		{"expired", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "exp", w.now.Add(-time.Minute).Unix())), "expired"},
		{"not yet valid", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "nbf", w.now.Add(time.Minute).Unix())), "not valid yet"},
		{"no exp", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "exp", nil)), "exp"},
		{"wrong audience", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "aud", "someone-else")), "audience"},
		{"wrong issuer", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "iss", "https://evil.example")), "not trusted"},
		{"issuer differing by a trailing slash", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "iss", w.a.issuer()+"/")), "not trusted"},
		{"acme's issuer naming globex", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "tenant", "globex")), "not trusted"},
		{"acme's issuer naming globex with globex's audience", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "tenant", "globex", "aud", "globex-api")), "not trusted"},
		{"globex's iss signed with another key under a known kid", w.b.sign(t, "a-ec", jwa.ES256(), w.baseB), "kid"},
		{"acme's iss signed with B's key under A's kid", w.b.sign(t, "a-ec", jwa.ES256(), w.baseA), "signature"},
		{"a tenant that does not exist", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "tenant", "initech")), "not trusted"},
		{"tenant claim missing", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "tenant", nil)), "tenant claim"},
		{"tenant claim an array", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "tenant", []string{"acme"})), "tenant claim"},
		{"tenant claim an object", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "tenant", map[string]string{"id": "acme"})), "tenant claim"},
		{"tenant claim not the issuer's", w.c.sign(t, "c-ec", jwa.ES256(), with(w.baseA, "iss", w.c.issuer())), "not trusted"},
		{"unknown kid", w.a.sign(t, "never-published", jwa.RS256(), w.baseA), "kid"},
		{"no sub", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "sub", nil)), "sub"},
		{"role claim missing", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "role", nil)), "role"},
		{"role not in the role map", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "role", "admin")), "role"},
		{"role an object", w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "role", map[string]string{"r": "bh-admins"})), "role"},
		{"tampered payload", func() string {
			parts := strings.Split(w.a.sign(t, "a-rsa", jwa.RS256(), w.baseA), ".")
			return parts[0] + "." + b64(with(w.baseA, "role", "bh-admins")) + "." + parts[2]
		}(), "signature"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			u, err := w.v.Verify(ctx, tc.token)
			if !errors.Is(err, identity.ErrInvalidToken) {
				t.Fatalf("got %+v, %v; want ErrInvalidToken", u, err)
			}
			if !strings.Contains(err.Error(), tc.why) {
				t.Errorf("error %q does not say %q", err, tc.why)
			}
			for _, seg := range strings.Split(tc.token, ".") {
				if len(seg) > 8 && strings.Contains(err.Error(), seg) {
					t.Errorf("error echoes the token: %q", err)
				}
			}
		})
	}
}

func TestRoleMapping(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		role any
		want catalog.Role
	}{
		{"mapped admin", "bh-admins", catalog.RoleAdmin},
		{"mapped reader", "bh-readers", catalog.RoleReader},
		{"the highest of several groups", []string{"unrelated", "bh-readers", "bh-admins"}, catalog.RoleAdmin},
		{"unmapped groups ignored beside a mapped one", []string{"root", "bh-writers"}, catalog.RoleWriter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := w.v.Verify(ctx, w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "role", tc.role)))
			if err != nil || u.Role != tc.want {
				t.Fatalf("got %q, %v; want %q", u.Role, err, tc.want)
			}
		})
	}
	// Without a role map the values are role names; anything else is refused.
	if u, err := w.v.Verify(ctx, w.b.sign(t, "b-ed", jwa.EdDSA(), with(w.baseB, "role", "writer"))); err != nil || u.Role != catalog.RoleWriter {
		t.Fatalf("plain role name: %+v, %v", u, err)
	}
	for _, bad := range []any{"superuser", "operator", []string{"root"}, ""} {
		if _, err := w.v.Verify(ctx, w.b.sign(t, "b-ed", jwa.EdDSA(), with(w.baseB, "role", bad))); !errors.Is(err, identity.ErrInvalidToken) {
			t.Errorf("role %v: got %v, want ErrInvalidToken", bad, err)
		}
	}
}

func TestUnknownKidRefetchIsRateLimited(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if _, err := w.v.Verify(ctx, w.a.sign(t, "a-rsa", jwa.RS256(), w.baseA)); err != nil {
		t.Fatal(err)
	}
	after := w.a.hits.Load()
	w.now = w.now.Add(31 * time.Second) // the first fetch was just now
	w.a.addKey(t, "ghost", sharedRSA(), false)
	ghost := w.a.sign(t, "ghost", jwa.RS256(), w.baseA)
	for range 5 {
		if _, err := w.v.Verify(ctx, ghost); !errors.Is(err, identity.ErrInvalidToken) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if got := w.a.hits.Load() - after; got != 1 {
		t.Fatalf("5 tokens with an unknown kid fetched the JWKS %d times, want 1", got)
	}
	w.now = w.now.Add(31 * time.Second)
	w.v.Verify(ctx, ghost)
	if got := w.a.hits.Load() - after; got != 2 {
		t.Fatalf("after the refresh interval: %d fetches, want 2", got)
	}
}

func TestKeyRotation(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if _, err := w.v.Verify(ctx, w.a.sign(t, "a-ec", jwa.ES256(), w.baseA)); err != nil {
		t.Fatal(err) // warms the cache with the old set
	}
	next, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	w.a.addKey(t, "a-ec-2026", next, true)
	w.now = w.now.Add(time.Minute) // rotation happens later than the first fetch
	u, err := w.v.Verify(ctx, w.a.sign(t, "a-ec-2026", jwa.ES256(), with(w.baseA, "role", "bh-admins")))
	if err != nil {
		t.Fatalf("token signed with the rotated-in key: %v", err)
	}
	if u.Role != catalog.RoleAdmin {
		t.Fatalf("role %q", u.Role)
	}
	// The old key still works (both are published).
	if _, err := w.v.Verify(ctx, w.a.sign(t, "a-ec", jwa.ES256(), w.baseA)); err != nil {
		t.Fatal(err)
	}
}

func TestIssuerChangeTakesEffect(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	tok := w.a.sign(t, "a-rsa", jwa.RS256(), w.baseA)
	if _, err := w.v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := w.cat.SetIssuers(ctx, w.acme, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.v.Verify(ctx, tok); !errors.Is(err, identity.ErrInvalidToken) {
		t.Fatalf("token accepted after the tenant stopped trusting its issuer: %v", err)
	}
}

func TestVerifyConcurrently(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	good := w.a.sign(t, "a-ec", jwa.ES256(), w.baseA)
	bad := w.a.sign(t, "a-ec", jwa.ES256(), with(w.baseA, "tenant", "globex"))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 10 {
				if _, err := w.v.Verify(ctx, good); err != nil {
					t.Error(i, err)
				}
				if _, err := w.v.Verify(ctx, bad); err == nil {
					t.Error(i, "cross-tenant token accepted")
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkVerify(b *testing.B) {
	w := newWorld(b)
	ctx := context.Background()
	uncached := identity.NewVerifier(identity.VerifierOptions{Issuers: w.cat, Now: func() time.Time { return w.now }, CacheSize: -1})
	b.Cleanup(func() { uncached.Close() })
	for _, tc := range []struct {
		name, kid string
		alg       jwa.SignatureAlgorithm
	}{{"RS256", "a-rsa", jwa.RS256()}, {"ES256", "a-ec", jwa.ES256()}} {
		tok := w.a.sign(b, tc.kid, tc.alg, w.baseA)
		if _, err := w.v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
		if _, err := uncached.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
		w.a.mu.Lock()
		pub, _ := w.a.pub.LookupKeyID(tc.kid)
		w.a.mu.Unlock()
		b.Run(tc.name+"/jwx-parse-only", func(b *testing.B) {
			for b.Loop() {
				if _, err := jwt.ParseString(tok, jwt.WithKey(tc.alg, pub), jwt.WithClock(jwt.ClockFunc(func() time.Time { return w.now }))); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/verify-uncached", func(b *testing.B) {
			for b.Loop() {
				if _, err := uncached.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/verify-cached", func(b *testing.B) {
			for b.Loop() {
				if _, err := w.v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestUnavailableJWKSIsRefusedNotHung(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.cat.SetIssuers(ctx, w.acme, []identity.Issuer{{Issuer: w.a.issuer(), Audience: "bulkhead", JWKSURL: w.a.issuer() + "/missing",
		RoleMap: map[string]string{"bh-writers": "writer"}}}); err != nil {
		t.Fatal(err)
	}
	tok := w.a.sign(t, "a-rsa", jwa.RS256(), w.baseA)
	for range 2 { // the second attempt is refused without fetching again
		if _, err := w.v.Verify(ctx, tok); !errors.Is(err, identity.ErrInvalidToken) || ctx.Err() != nil {
			t.Fatalf("got %v (ctx %v), want a prompt ErrInvalidToken", err, ctx.Err())
		}
	}
}
