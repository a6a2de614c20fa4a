package catalogauth_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/analytics"
	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/identity"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ingress/catalogauth"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// verifierFunc is a TokenVerifier implemented by a function.
type verifierFunc func(ctx context.Context, token string) (identity.User, error)

func (f verifierFunc) Verify(ctx context.Context, token string) (identity.User, error) {
	return f(ctx, token)
}

// statesFunc is an Incarnations implemented by a function (the tenant's
// incarnation began at the zero time).
type statesFunc func(ctx context.Context, id tenant.ID) (catalog.State, error)

func (f statesFunc) Incarnation(ctx context.Context, id tenant.ID) (catalog.State, time.Time, error) {
	st, err := f(ctx, id)
	return st, time.Time{}, err
}

// keysFunc is a KeyStore implemented by a function.
type keysFunc func(ctx context.Context, token string) (catalog.Principal, error)

func (f keysFunc) Authenticate(ctx context.Context, token string) (catalog.Principal, error) {
	return f(ctx, token)
}

// Tokens that look like JWTs (three base64url segments); the fake
// verifier knows what each one says.
const (
	jwtAcme    = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnLWFjbWU"
	jwtBeta    = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnLWJldGE"
	jwtGone    = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJnb25lIn0.c2lnLWdvbmU"
	jwtInvalid = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJldmUifQ.c2ln"
	jwtOld     = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvbGQifQ.c2lnLW9sZA" // issued an hour ago
	jwtNoIAT   = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJub2lhdCJ9.c2lnLW5vaWF0"
)

var (
	acme = tenant.MustParse("acme")
	beta = tenant.MustParse("beta")
)

var verifier = verifierFunc(func(_ context.Context, token string) (identity.User, error) {
	switch token {
	case jwtAcme:
		return identity.User{Tenant: acme, Issuer: "https://idp.example", Subject: "alice", Role: identity.RoleWriter, IssuedAt: time.Now()}, nil
	case jwtBeta:
		return identity.User{Tenant: beta, Issuer: "https://idp.example", Subject: "bob", Role: identity.RoleReader, IssuedAt: time.Now()}, nil
	case jwtOld:
		return identity.User{Tenant: acme, Issuer: "https://idp.example", Subject: "alice", Role: identity.RoleAdmin, IssuedAt: time.Now().Add(-time.Hour)}, nil
	case jwtNoIAT:
		return identity.User{Tenant: acme, Issuer: "https://idp.example", Subject: "alice", Role: identity.RoleAdmin}, nil
	case jwtGone:
		return identity.User{Tenant: tenant.MustParse("gone"), Issuer: "https://idp.example", Subject: "carol", Role: identity.RoleReader, IssuedAt: time.Now()}, nil
	}
	return identity.User{}, errors.New("signature does not verify")
})

// TestAll runs the catalog's credentials through All over a real SQLite
// catalog: each kind reaches its principal, and each failure the sentinel
// the ingress answers with (suspended: 403, anything else invalid: 401).
func TestAll(t *testing.T) {
	ctx := context.Background()
	cat, err := catalog.Open(filepath.Join(t.TempDir(), "catalog.db"), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	for _, id := range []tenant.ID{acme, beta} {
		if _, err := cat.CreateTenant(ctx, catalog.Tenant{ID: id, Name: id.String(), Tier: "standard",
			Placement: store.Placement{Mode: store.Pooled, Shard: "local"}},
			func(context.Context, tenant.ID, store.Placement) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	acmeKey, acmeTok, err := cat.CreateKey(ctx, acme, catalog.RoleReader, "app")
	if err != nil {
		t.Fatal(err)
	}
	revoked, revokedTok, err := cat.CreateKey(ctx, acme, catalog.RoleAdmin, "old")
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.RevokeKey(ctx, acme, revoked.ID); err != nil {
		t.Fatal(err)
	}
	_, betaTok, err := cat.CreateKey(ctx, beta, catalog.RoleWriter, "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Suspend(ctx, beta); err != nil {
		t.Fatal(err)
	}
	sam, samTok, err := cat.CreateAgent(ctx, "sam")
	if err != nil {
		t.Fatal(err)
	}
	gone, goneTok, err := cat.CreateAgent(ctx, "gone")
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.RevokeAgent(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	ann, annTok, err := cat.CreateAnalyst(ctx, "ann", analytics.EpsilonUnit)
	if err != nil {
		t.Fatal(err)
	}
	bob, bobTok, err := cat.CreateAnalyst(ctx, "bob", analytics.EpsilonUnit)
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.RevokeAnalyst(ctx, bob.ID); err != nil {
		t.Fatal(err)
	}
	const operator = "op-0123456789"
	all := catalogauth.All(cat, sha256.Sum256([]byte(operator)), verifier)

	ok := []struct {
		name, token string
		want        ingress.Principal
	}{
		{"the operator token", operator, ingress.Principal{Kind: ingress.KindOperator, ID: "operator", Role: "operator"}},
		{"a tenant's API key", acmeTok, ingress.Principal{Kind: ingress.KindTenantKey, ID: acmeKey.ID, Tenant: acme, Role: "reader"}},
		{"a support agent", samTok, ingress.Principal{Kind: ingress.KindSupport, ID: sam.ID, Role: "support"}},
		{"an analyst", annTok, ingress.Principal{Kind: ingress.KindAnalyst, ID: ann.ID, Role: "analyst"}},
		{"a tenant user's JWT", jwtAcme, ingress.Principal{Kind: ingress.KindTenantUser, ID: "https://idp.example|alice", Tenant: acme, Role: "writer"}},
	}
	for _, tc := range ok {
		got, err := all.Authenticate(ctx, tc.token)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v", tc.name, got, err, tc.want)
		}
	}

	flip := func(tok string) string { // one secret character changed
		c := byte('x')
		if tok[len(tok)-5] == 'x' {
			c = 'y'
		}
		return tok[:len(tok)-5] + string(c) + tok[len(tok)-4:]
	}
	refused := []struct {
		name, token string
		want        error
	}{
		{"a revoked key", revokedTok, ingress.ErrUnauthenticated},
		{"a key with a wrong secret", flip(acmeTok), ingress.ErrUnauthenticated},
		{"a suspended tenant's key", betaTok, ingress.ErrSuspended},
		{"a revoked agent", goneTok, ingress.ErrUnauthenticated},
		{"an agent token with a wrong secret", flip(samTok), ingress.ErrUnauthenticated},
		{"an agent token as a key", strings.Replace(samTok, "bks_", "bk_", 1), ingress.ErrUnauthenticated},
		{"a revoked analyst", bobTok, ingress.ErrUnauthenticated},
		{"an analyst token with a wrong secret", flip(annTok), ingress.ErrUnauthenticated},
		{"an analyst token as an agent's", strings.Replace(annTok, "bka_", "bks_", 1), ingress.ErrUnauthenticated},
		{"an analyst token as a key", strings.Replace(annTok, "bka_", "bk_", 1), ingress.ErrUnauthenticated},
		{"a JWT that does not verify", jwtInvalid, ingress.ErrUnauthenticated},
		{"a JWT of a suspended tenant", jwtBeta, ingress.ErrSuspended},
		{"a JWT of a tenant the catalog does not know", jwtGone, ingress.ErrUnauthenticated},
		{"a JWT issued before the tenant's incarnation", jwtOld, ingress.ErrUnauthenticated},
		{"a JWT without iat", jwtNoIAT, ingress.ErrUnauthenticated},
		{"the operator token but one character", operator[:len(operator)-1], ingress.ErrUnauthenticated},
		{"no scheme at all", "hello", ingress.ErrUnauthenticated},
	}
	for _, tc := range refused {
		got, err := all.Authenticate(ctx, tc.token)
		if !errors.Is(err, tc.want) || got != (ingress.Principal{}) {
			t.Errorf("%s: %+v %v, want %v", tc.name, got, err, tc.want)
		}
		if errors.Is(err, ingress.ErrNotMine) {
			t.Errorf("%s: All answered ErrNotMine (the gate's chain would ask on)", tc.name)
		}
	}

	t.Run("without a verifier a JWT is no credential", func(t *testing.T) {
		noJWT := catalogauth.All(cat, sha256.Sum256([]byte(operator)), nil)
		if _, err := noJWT.Authenticate(ctx, jwtAcme); !errors.Is(err, ingress.ErrUnauthenticated) {
			t.Errorf("%v, want ErrUnauthenticated", err)
		}
		if got, err := noJWT.Authenticate(ctx, acmeTok); err != nil || got.Tenant != acme {
			t.Errorf("%+v %v", got, err)
		}
	})
}

// TestStoreFailuresAreNotDenials: a store that cannot answer makes an
// internal failure (the ingress answers 500), never a denial or a pass.
func TestStoreFailuresAreNotDenials(t *testing.T) {
	ctx := context.Background()
	down := errors.New("catalog: database is locked")
	keys := catalogauth.Keys(keysFunc(func(context.Context, string) (catalog.Principal, error) {
		return catalog.Principal{}, fmt.Errorf("authenticate: %w", down)
	}))
	jwt := catalogauth.JWT(verifier, statesFunc(func(context.Context, tenant.ID) (catalog.State, error) {
		return "", down
	}))
	for name, a := range map[string]ingress.Authenticator{"Keys": keys, "JWT": jwt} {
		tok := "bk_x_y"
		if name == "JWT" {
			tok = jwtAcme
		}
		got, err := a.Authenticate(ctx, tok)
		if !errors.Is(err, down) || got != (ingress.Principal{}) {
			t.Errorf("%s: %+v %v, want the store's error", name, got, err)
		}
		for _, s := range []error{ingress.ErrUnauthenticated, ingress.ErrSuspended, ingress.ErrNotMine} {
			if errors.Is(err, s) {
				t.Errorf("%s: a store failure reads as %v", name, s)
			}
		}
	}

	t.Run("a tenant neither active nor suspended is no credential", func(t *testing.T) {
		jwt := catalogauth.JWT(verifier, statesFunc(func(context.Context, tenant.ID) (catalog.State, error) {
			return catalog.Deleting, nil
		}))
		if _, err := jwt.Authenticate(ctx, jwtAcme); !errors.Is(err, ingress.ErrUnauthenticated) {
			t.Errorf("%v, want ErrUnauthenticated", err)
		}
	})

	t.Run("each authenticator leaves other schemes to the next", func(t *testing.T) {
		if _, err := catalogauth.JWT(verifier, nil).Authenticate(ctx, "bk_x_y"); !errors.Is(err, ingress.ErrNotMine) {
			t.Errorf("JWT on a key: %v, want ErrNotMine", err)
		}
		if _, err := catalogauth.Agents(nil).Authenticate(ctx, jwtAcme); !errors.Is(err, ingress.ErrNotMine) {
			t.Errorf("Agents on a JWT: %v, want ErrNotMine", err)
		}
	})
}
