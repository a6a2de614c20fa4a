package ingress

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

func TestPrincipalNameFitsTheAuditLog(t *testing.T) {
	long := Principal{Kind: KindTenantUser, ID: "https://idp.example.com|" + strings.Repeat("é", 300) + "\n", Tenant: tenant.MustParse("acme")}
	s := long.String()
	if len(s) > maxPrincipalName || !utf8.ValidString(s) || strings.ContainsAny(s, "\n") {
		t.Fatalf("principal name %q (%d bytes) does not fit", s, len(s))
	}
	other := long
	other.ID += "x"
	if other.String() == s {
		t.Fatal("two long principals share a name")
	}
	if got := (Principal{Kind: KindTenantKey, ID: "k1", Tenant: tenant.MustParse("acme")}).String(); got != "tenant_key:k1@acme" {
		t.Fatalf("short name %q", got)
	}
}

func TestPrincipalNameHasNoControlCharacters(t *testing.T) {
	for _, id := range []string{"a\u0085b", "a\u009bb", "a\x1bb", "a\x7fb", "a\xffb"} {
		s := Principal{Kind: KindTenantUser, ID: id, Tenant: tenant.MustParse("acme")}.String()
		for _, r := range s {
			if r < 0x20 || r >= 0x7f && r <= 0x9f {
				t.Errorf("principal %q is named %q, with control character %U", id, s, r)
			}
		}
		if !utf8.ValidString(s) {
			t.Errorf("principal %q is named %q, not valid UTF-8", id, s)
		}
	}
}
