package server_test

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
)

// clock is a server clock tests move forward.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

// idp is a real identity provider for tests: an httptest server serving
// one JWKS per issuer path (/a, /b, ...), each issuer with its own RSA key.
type idp struct {
	srv  *httptest.Server
	mu   sync.Mutex
	keys map[string]*rsa.PrivateKey // issuer path → key
}

var (
	rsaOnce sync.Once
	rsaKeys [3]*rsa.PrivateKey
)

// testKeys returns three RSA keys, generated once per test binary.
func testKeys(t testing.TB) [3]*rsa.PrivateKey {
	rsaOnce.Do(func() {
		for i := range rsaKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			rsaKeys[i] = k
		}
	})
	return rsaKeys
}

func newIDP(t testing.TB) *idp {
	ks := testKeys(t)
	p := &idp{keys: map[string]*rsa.PrivateKey{"a": ks[0], "b": ks[1]}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for name, k := range p.keys {
			if r.URL.Path == "/"+name+"/.well-known/jwks.json" {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk(&k.PublicKey)}})
				return
			}
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jwk(pub *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())}
}

func (p *idp) issuer(name string) string { return p.srv.URL + "/" + name }

// claims returns valid claims for a user of tenant id at issuer name.
func (p *idp) claims(name, id, role string, now time.Time) map[string]any {
	return map[string]any{"iss": p.issuer(name), "sub": "user-1", "aud": "bulkhead-api",
		"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "tenant": id, "role": role}
}

// sign makes a compact JWS over claims with header fields hdr, signed
// RS256 with key (or HS256 with hmacKey, or unsigned for alg none).
func sign(t testing.TB, hdr map[string]any, claims map[string]any, key *rsa.PrivateKey, hmacKey []byte) string {
	t.Helper()
	h, _ := json.Marshal(hdr)
	c, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(c)
	var sig []byte
	switch hdr["alg"] {
	case "RS256":
		sum := sha256.Sum256([]byte(in))
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:]); err != nil {
			t.Fatal(err)
		}
	case "HS256":
		m := hmac.New(sha256.New, hmacKey)
		m.Write([]byte(in))
		sig = m.Sum(nil)
	case "none":
		return in + "."
	}
	return in + "." + b64(sig)
}

// tamper replaces token's payload with claims and keeps its signature.
func tamper(token string, claims map[string]any) string {
	c, _ := json.Marshal(claims)
	parts := strings.SplitN(token, ".", 3)
	return parts[0] + "." + b64(c) + "." + parts[2]
}

func (p *idp) token(t testing.TB, name string, claims map[string]any) string {
	return sign(t, map[string]any{"alg": "RS256", "kid": "k1", "typ": "JWT"}, claims, p.keys[name], nil)
}

// jwtEnv is a server whose tenants alpha and beta trust issuers a and b.
func jwtEnv(t testing.TB, opts server.Options) (*env, *idp, *clock) {
	t.Helper()
	clk := &clock{}
	opts.Now = clk.now
	e := newEnvIn(t, t.TempDir(), opts)
	p := newIDP(t)
	for id, iss := range map[string]string{"alpha": "a", "beta": "b"} {
		e.createTenant(id, "pooled")
		want(t, e.req("PUT", "/v1/admin/tenants/"+id+"/issuers", e.op,
			[]map[string]any{{"issuer": p.issuer(iss), "audience": "bulkhead-api"}}), 200, "")
	}
	return e, p, clk
}

func TestAttackJWT(t *testing.T) { testAttackJWT(t, server.Options{}) }

func testAttackJWT(t *testing.T, opts server.Options) {
	e, p, clk := jwtEnv(t, opts)
	now := clk.now()
	valid := p.claims("a", "alpha", "writer", now)
	good := p.token(t, "a", valid)
	want(t, e.req("PUT", "/v1/collections/notes/records/n1", good, `{"v":1}`), 201, "")
	want(t, e.req("GET", "/v1/collections/notes/records/n1", good, nil), 200, "")

	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for k2, v2 := range valid {
			c[k2] = v2
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	pemPub, _ := x509.MarshalPKIXPublicKey(&p.keys["a"].PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pemPub})
	other := testKeys(t)[2]

	attacks := []struct {
		name, token string
	}{
		{"alg none is refused", sign(t, map[string]any{"alg": "none", "typ": "JWT"}, valid, nil, nil)},
		{"HS256 with the public key (PEM) as secret is refused", sign(t, map[string]any{"alg": "HS256", "kid": "k1"}, valid, nil, pubPEM)},
		{"HS256 with the modulus as secret is refused", sign(t, map[string]any{"alg": "HS256", "kid": "k1"}, valid, nil, p.keys["a"].PublicKey.N.Bytes())},
		{"a signature by another key with the same kid is refused", sign(t, map[string]any{"alg": "RS256", "kid": "k1"}, valid, other, nil)},
		{"an expired token is refused", p.token(t, "a", with("exp", now.Add(-time.Hour).Unix()))},
		{"a token without exp is refused", p.token(t, "a", with("exp", nil))},
		{"a token not yet valid is refused", p.token(t, "a", with("nbf", now.Add(time.Hour).Unix()))},
		{"a wrong audience is refused", p.token(t, "a", with("aud", "another-api"))},
		{"a wrong issuer is refused", p.token(t, "a", with("iss", p.srv.URL+"/evil"))},
		{"a token from alpha's issuer naming beta is refused", p.token(t, "a", with("tenant", "beta"))},
		{"a token from beta's issuer naming alpha is refused", p.token(t, "b", with("iss", p.issuer("b")))},
		{"a missing tenant claim is refused", p.token(t, "a", with("tenant", nil))},
		{"an array tenant claim is refused", p.token(t, "a", with("tenant", []string{"alpha", "beta"}))},
		{"an unknown role is refused", p.token(t, "a", with("role", "root"))},
		{"a tampered payload is refused", tamper(good, with("role", "admin"))},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			e := e.on(t)
			want(t, e.req("GET", "/v1/collections/notes/records/n1", a.token, nil), 401, "unauthenticated")
		})
	}

	t.Run("a reader user cannot write", func(t *testing.T) {
		e := e.on(t)
		rd := p.token(t, "a", with("role", "reader"))
		want(t, e.req("GET", "/v1/collections/notes/records/n1", rd, nil), 200, "")
		want(t, e.req("PUT", "/v1/collections/notes/records/n1", rd, `{"v":2}`), 403, "forbidden")
	})
	t.Run("beta's user sees none of alpha's data", func(t *testing.T) {
		e := e.on(t)
		bt := p.token(t, "b", p.claims("b", "beta", "admin", now))
		want(t, e.req("GET", "/v1/collections/notes/records/n1", bt, nil), 404, "not_found")
		want(t, e.req("GET", "/v1/collections/notes/records/n1", bt, nil, "X-Tenant-ID", "alpha"), 404, "not_found")
	})
	t.Run("Bulkhead-Act-As-Tenant with a JWT is forbidden", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("GET", "/v1/collections/notes/records/n1", good, nil, "Bulkhead-Act-As-Tenant", "beta"), 403, "forbidden")
	})
	t.Run("a JWT cannot use the control plane", func(t *testing.T) {
		e := e.on(t)
		admin := p.token(t, "a", with("role", "admin"))
		want(t, e.req("GET", "/v1/admin/tenants/alpha", admin, nil), 403, "forbidden")
	})
	t.Run("a suspended tenant's user gets tenant_suspended", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("POST", "/v1/admin/tenants/alpha/suspend", e.op, nil), 200, "")
		want(t, e.req("GET", "/v1/collections/notes/records/n1", good, nil), 403, "tenant_suspended")
		want(t, e.req("POST", "/v1/admin/tenants/alpha/resume", e.op, nil), 200, "")
		want(t, e.req("GET", "/v1/collections/notes/records/n1", good, nil), 200, "")
	})
	t.Run("a token expires with the clock", func(t *testing.T) {
		e := e.on(t)
		clk.advance(time.Hour)
		want(t, e.req("GET", "/v1/collections/notes/records/n1", good, nil), 401, "unauthenticated")
	})
}

func TestIssuersAdmin(t *testing.T) {
	e := newEnv(t)
	tok := e.tenantWithKey("alpha", "pooled")
	want(t, e.req("GET", "/v1/admin/tenants/alpha/issuers", tok, nil), 403, "forbidden")
	want(t, e.req("PUT", "/v1/admin/tenants/alpha/issuers", tok, `[]`), 403, "forbidden")
	want(t, e.req("PUT", "/v1/admin/tenants/alpha/issuers", e.op,
		[]map[string]any{{"issuer": "http://idp.example.com", "audience": "x"}}), 400, "invalid_issuer")
	want(t, e.req("PUT", "/v1/admin/tenants/alpha/issuers", e.op,
		[]map[string]any{{"issuer": "https://idp.example.com", "audience": "x", "algorithms": []string{"HS256"}}}), 400, "invalid_issuer")
	want(t, e.req("PUT", "/v1/admin/tenants/nosuch/issuers", e.op, `[]`), 404, "tenant_not_found")
	r := e.req("PUT", "/v1/admin/tenants/alpha/issuers", e.op, []map[string]any{{"issuer": "https://idp.example.com", "audience": "x"}})
	want(t, r, 200, "")
	r = e.req("GET", "/v1/admin/tenants/alpha/issuers", e.op, nil)
	want(t, r, 200, "")
	items := r.json(t)["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["jwks_url"] != "https://idp.example.com/.well-known/jwks.json" {
		t.Fatalf("issuers: %s", r.body)
	}
}
