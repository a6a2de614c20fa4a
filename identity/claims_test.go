package identity_test

import (
	"context"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/bulkhead-dev/bulkhead/identity"
)

// TestVerifyReadsTheConfiguredTenantClaim: the tenant is read from the
// claim its issuer is configured with, whatever other string claims the
// token holds (profile claims whose values look like tenant ids came first
// in name order and used up the candidates before).
func TestVerifyReadsTheConfiguredTenantClaim(t *testing.T) {
	w := newWorld(t)
	claims := with(w.baseA, "iss", w.c.issuer(), "tenant", nil, "org", "acme", "role", "admin",
		"family_name", "smith", "given_name", "alice", "locale", "en", "middle_name", "jane", "nickname", "ali")
	u, err := w.v.Verify(context.Background(), w.c.sign(t, "c-ec", jwa.ES256(), claims))
	if err != nil {
		t.Fatalf("a token with its tenant in org and five profile claims was refused: %v", err)
	}
	if u.Tenant != w.acme || u.Role != identity.RoleAdmin {
		t.Fatalf("got %+v, want admin of acme", u)
	}

	t.Run("a profile claim naming another tenant changes nothing", func(t *testing.T) {
		u, err := w.v.Verify(context.Background(), w.c.sign(t, "c-ec", jwa.ES256(), with(claims, "nickname", "globex", "sub", "user-2")))
		if err != nil || u.Tenant != w.acme {
			t.Fatalf("got %+v, %v; want acme", u, err)
		}
	})
}

// TestVerifyReportsIssuedAt: a token's iat is passed on (the catalog's
// authenticator compares it with the tenant's incarnation), zero without
// one.
func TestVerifyReportsIssuedAt(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   time.Time
	}{
		{"with iat", w.baseA, w.now},
		{"without iat", with(w.baseA, "iat", nil), time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // the full verification, then the cache
				u, err := w.v.Verify(ctx, w.a.sign(t, "a-rsa", jwa.RS256(), tc.claims))
				if err != nil {
					t.Fatal(err)
				}
				if !u.IssuedAt.Equal(tc.want) {
					t.Fatalf("IssuedAt %v, want %v", u.IssuedAt, tc.want)
				}
			}
		})
	}
}
