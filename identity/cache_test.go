package identity_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/identity"
)

// verifyChecks verifies token with v and reports how many signature checks
// that took (0: a cache hit).
func verifyChecks(t *testing.T, v *identity.Verifier, token string) (identity.User, int64, error) {
	t.Helper()
	before := v.SignatureChecks()
	u, err := v.Verify(context.Background(), token)
	return u, v.SignatureChecks() - before, err
}

func TestCacheHitSkipsSignatureCheck(t *testing.T) {
	w := newWorld(t)
	tok := w.a.sign(t, "a-rsa", jwa.RS256(), w.baseA)
	first, n, err := verifyChecks(t, w.v, tok)
	if err != nil || n != 1 {
		t.Fatalf("first verification: %v, %d signature checks, want 1", err, n)
	}
	fetches := w.a.hits.Load()
	for range 3 {
		u, n, err := verifyChecks(t, w.v, tok)
		if err != nil || n != 0 {
			t.Fatalf("repeat verification: %v, %d signature checks, want a cache hit", err, n)
		}
		if u != first {
			t.Fatalf("hit returned %+v, want %+v", u, first)
		}
	}
	if w.a.hits.Load() != fetches {
		t.Fatal("a cache hit fetched the JWKS")
	}
}

func TestCacheHonoursExpAndNbf(t *testing.T) {
	w := newWorld(t)
	exp := w.now.Add(time.Minute)
	tok := w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "exp", exp.Unix(), "nbf", w.now.Add(-time.Minute).Unix()))
	if _, err := w.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	w.now = exp.Add(identity.ClockSkew - time.Second) // still within the skew
	if _, n, err := verifyChecks(t, w.v, tok); err != nil || n != 0 {
		t.Fatalf("within the skew: %v, %d signature checks, want a hit", err, n)
	}
	w.now = exp.Add(identity.ClockSkew)
	if _, _, err := verifyChecks(t, w.v, tok); !errors.Is(err, identity.ErrInvalidToken) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("after exp + skew: %v, want an expired token refused", err)
	}
	// The clock going back before nbf - skew refuses the token too.
	w.now = w.now.Add(-time.Hour)
	if _, err := w.v.Verify(context.Background(), tok); !errors.Is(err, identity.ErrInvalidToken) {
		t.Fatalf("before nbf: %v", err)
	}
}

func TestCacheRechecksIssuerTrust(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	tok := w.a.sign(t, "a-rsa", jwa.RS256(), w.baseA)
	trusted := []identity.Issuer{{Issuer: w.a.issuer(), Audience: "bulkhead", RoleMap: map[string]string{"bh-writers": "writer"}}}
	for _, tc := range []struct {
		name    string
		issuers []identity.Issuer
	}{
		{"issuer removed", nil},
		{"audience changed", []identity.Issuer{{Issuer: w.a.issuer(), Audience: "other", RoleMap: map[string]string{"bh-writers": "writer"}}}},
		{"tenant claim changed", []identity.Issuer{{Issuer: w.a.issuer(), Audience: "bulkhead", TenantClaim: "org", RoleMap: map[string]string{"bh-writers": "writer"}}}},
		{"alg no longer allowed", []identity.Issuer{{Issuer: w.a.issuer(), Audience: "bulkhead", Algorithms: []string{"ES256"}, RoleMap: map[string]string{"bh-writers": "writer"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := w.cat.SetIssuers(ctx, w.acme, trusted); err != nil {
				t.Fatal(err)
			}
			w.v.Verify(ctx, tok)
			if _, n, err := verifyChecks(t, w.v, tok); err != nil || n != 0 {
				t.Fatalf("warm: %v, %d signature checks", err, n)
			}
			if err := w.cat.SetIssuers(ctx, w.acme, tc.issuers); err != nil {
				t.Fatal(err)
			}
			if u, _, err := verifyChecks(t, w.v, tok); !errors.Is(err, identity.ErrInvalidToken) {
				t.Fatalf("cached token accepted after %s: %+v, %v", tc.name, u, err)
			}
		})
	}
}

func TestCacheRemapsRoleOnEveryHit(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	tok := w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "role", []string{"bh-writers", "auditors"}))
	if u, err := w.v.Verify(ctx, tok); err != nil || u.Role != catalog.RoleWriter {
		t.Fatalf("%+v, %v", u, err)
	}
	set := func(m map[string]string) {
		t.Helper()
		if err := w.cat.SetIssuers(ctx, w.acme, []identity.Issuer{{Issuer: w.a.issuer(), Audience: "bulkhead", RoleMap: m}}); err != nil {
			t.Fatal(err)
		}
	}
	set(map[string]string{"bh-writers": "reader"})
	if u, n, err := verifyChecks(t, w.v, tok); err != nil || n != 0 || u.Role != catalog.RoleReader {
		t.Fatalf("after demotion: %+v, %v, %d checks; want reader from the cache", u, err, n)
	}
	set(map[string]string{"bh-writers": "writer", "auditors": "admin"})
	if u, n, err := verifyChecks(t, w.v, tok); err != nil || n != 0 || u.Role != catalog.RoleAdmin {
		t.Fatalf("after promotion: %+v, %v, %d checks; want admin from the cache", u, err, n)
	}
	set(map[string]string{"someone-else": "admin"})
	if u, _, err := verifyChecks(t, w.v, tok); !errors.Is(err, identity.ErrInvalidToken) {
		t.Fatalf("role no longer mapped: %+v, %v", u, err)
	}
}

func TestCacheTamperedTokenIsNotAHit(t *testing.T) {
	w := newWorld(t)
	tok := w.a.sign(t, "a-rsa", jwa.RS256(), w.baseA)
	if _, err := w.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	sig := []byte(parts[2])
	if sig[20] == 'A' {
		sig[20] = 'B'
	} else {
		sig[20] = 'A'
	}
	for name, bad := range map[string]string{
		// one byte of the payload: sub user-1 → user-2, still valid JSON
		"payload":   parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "user-1", "user-2", 1))) + "." + parts[2],
		"signature": parts[0] + "." + parts[1] + "." + string(sig),
	} {
		if bad == tok {
			t.Fatalf("%s: tampering changed nothing", name)
		}
		u, n, err := verifyChecks(t, w.v, bad)
		if n != 1 || !errors.Is(err, identity.ErrInvalidToken) || !strings.Contains(err.Error(), "signature") {
			t.Fatalf("%s changed: %+v, %v, %d signature checks; want a miss refused by the signature check", name, u, err, n)
		}
	}
	if _, n, err := verifyChecks(t, w.v, tok); err != nil || n != 0 {
		t.Fatalf("original after tampered copies: %v, %d checks", err, n)
	}
}

func TestCacheFailuresAreNotCached(t *testing.T) {
	w := newWorld(t)
	tok := w.a.sign(t, "a-rsa", jwa.RS256(), with(w.baseA, "aud", "someone-else"))
	for range 2 {
		if _, n, err := verifyChecks(t, w.v, tok); !errors.Is(err, identity.ErrInvalidToken) || n != 1 {
			t.Fatalf("%v, %d signature checks; want a refusal checked each time", err, n)
		}
	}
	if got := w.v.CacheLen(); got != 0 {
		t.Fatalf("cache holds %d entries after failures only", got)
	}
}

func TestCacheTTL(t *testing.T) {
	w := newWorld(t)
	v := identity.NewVerifier(identity.VerifierOptions{Issuers: w.cat, Now: func() time.Time { return w.now }, CacheTTL: time.Minute})
	t.Cleanup(func() { v.Close() })
	tok := w.a.sign(t, "a-ec", jwa.ES256(), w.baseA) // exp in an hour
	v.Verify(context.Background(), tok)
	w.now = w.now.Add(59 * time.Second)
	if _, n, err := verifyChecks(t, v, tok); err != nil || n != 0 {
		t.Fatalf("within the TTL: %v, %d checks", err, n)
	}
	w.now = w.now.Add(time.Second)
	if _, n, err := verifyChecks(t, v, tok); err != nil || n != 1 {
		t.Fatalf("at the TTL: %v, %d checks; want the signature checked again", err, n)
	}
}

func TestCacheIsBounded(t *testing.T) {
	w := newWorld(t)
	v := identity.NewVerifier(identity.VerifierOptions{Issuers: w.cat, Now: func() time.Time { return w.now }, CacheSize: 3})
	t.Cleanup(func() { v.Close() })
	toks := make([]string, 10)
	for i := range toks {
		toks[i] = w.a.sign(t, "a-ec", jwa.ES256(), with(w.baseA, "sub", fmt.Sprintf("user-%d", i)))
	}
	for range 2 {
		for i, tok := range toks {
			if u, err := v.Verify(context.Background(), tok); err != nil || u.Subject != fmt.Sprintf("user-%d", i) {
				t.Fatalf("token %d: %+v, %v", i, u, err)
			}
			if got := v.CacheLen(); got > 3 {
				t.Fatalf("cache holds %d entries, bound is 3", got)
			}
		}
	}
	if v.CacheLen() == 0 {
		t.Fatal("nothing was cached")
	}
	off := identity.NewVerifier(identity.VerifierOptions{Issuers: w.cat, Now: func() time.Time { return w.now }, CacheSize: -1})
	t.Cleanup(func() { off.Close() })
	for range 2 {
		if _, n, err := verifyChecks(t, off, toks[0]); err != nil || n != 1 || off.CacheLen() != 0 {
			t.Fatalf("cache off: %v, %d checks, %d entries", err, n, off.CacheLen())
		}
	}
}

func TestCacheConcurrently(t *testing.T) {
	w := newWorld(t)
	v := identity.NewVerifier(identity.VerifierOptions{Issuers: w.cat, Now: func() time.Time { return w.now }, CacheSize: 4})
	t.Cleanup(func() { v.Close() })
	toks := make([]string, 8)
	for i := range toks {
		toks[i] = w.a.sign(t, "a-ec", jwa.ES256(), with(w.baseA, "sub", fmt.Sprintf("user-%d", i)))
	}
	bad := w.a.sign(t, "a-ec", jwa.ES256(), with(w.baseA, "tenant", "globex"))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				tok := toks[(g+i)%len(toks)]
				if u, err := v.Verify(context.Background(), tok); err != nil || u.Tenant != w.acme {
					t.Error(g, u, err)
				}
				if _, err := v.Verify(context.Background(), bad); err == nil {
					t.Error(g, "cross-tenant token accepted")
				}
			}
		})
	}
	wg.Wait()
	if got := v.CacheLen(); got > 4 {
		t.Fatalf("cache holds %d entries, bound is 4", got)
	}
}
