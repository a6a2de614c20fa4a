package tenant_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in string
		ok bool
	}{
		{"acme", true},
		{"ab", true},
		{"a1", true},
		{"acme-corp-2", true},
		{"a" + strings.Repeat("b", 39), true},
		{"a" + strings.Repeat("b", 40), false}, // 41 characters
		{"a", false},
		{"", false},
		{"1acme", false},
		{"-acme", false},
		{"acme-", false},
		{"Acme", false},
		{"acme_corp", false},
		{"acme.corp", false},
		{"acme corp", false},
		{"acmé", false},
		{"acme\x00", false},
		{"admin", false},
		{"system", false},
		{"public", false},
		{"default", false},
		{"bulkhead", false},
		{"admins", true},
		{"../etc", false},
		{"pg_catalog", false},
	}
	for _, tc := range cases {
		name := "accepts " + tc.in
		if !tc.ok {
			name = "refuses " + tc.in
		}
		t.Run(name, func(t *testing.T) {
			id, err := tenant.Parse(tc.in)
			if tc.ok {
				if err != nil || id.String() != tc.in {
					t.Fatalf("Parse(%q) = %v, %v", tc.in, id, err)
				}
				return
			}
			if !errors.Is(err, tenant.ErrInvalid) || !id.IsZero() {
				t.Fatalf("Parse(%q) = %v, %v; want ErrInvalid", tc.in, id, err)
			}
		})
	}
}

func TestContextCarriesTheTenant(t *testing.T) {
	if _, err := tenant.FromContext(context.Background()); !errors.Is(err, tenant.ErrMissing) {
		t.Fatalf("empty context: %v", err)
	}
	acme := tenant.MustParse("acme")
	ctx := tenant.WithID(context.Background(), acme)
	got, err := tenant.FromContext(ctx)
	if err != nil || got != acme {
		t.Fatalf("FromContext = %v, %v", got, err)
	}
	// A look-alike key of another package cannot inject a tenant.
	type ctxKey struct{}
	forged := context.WithValue(context.Background(), ctxKey{}, acme)
	if _, err := tenant.FromContext(forged); !errors.Is(err, tenant.ErrMissing) {
		t.Fatalf("forged context: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("WithID with the zero ID did not panic")
		}
	}()
	tenant.WithID(context.Background(), tenant.ID{})
}

func TestStorageNameIsPrefixedAndInjective(t *testing.T) {
	seen := map[string]string{}
	for _, s := range []string{"ab", "a-b", "ab-c", "abc", "a-bc", "a1-2", "a12"} {
		n := tenant.MustParse(s).StorageName()
		if !strings.HasPrefix(n, "t_") || len(n) > 63 {
			t.Fatalf("StorageName(%q) = %q", s, n)
		}
		if other, dup := seen[n]; dup {
			t.Fatalf("%q and %q both map to %q", s, other, n)
		}
		seen[n] = s
	}
}

func TestUnmarshalTextValidates(t *testing.T) {
	var id tenant.ID
	if err := id.UnmarshalText([]byte("admin")); !errors.Is(err, tenant.ErrInvalid) {
		t.Fatalf("UnmarshalText(admin) = %v", err)
	}
	if err := id.UnmarshalText([]byte("acme")); err != nil || id.String() != "acme" {
		t.Fatalf("UnmarshalText(acme) = %v, %v", id, err)
	}
}

// FuzzParse checks that whatever Parse accepts obeys the contract and maps
// to a safe, reversible storage name.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"acme", "a-b", "admin", "", "a-", "Z9", strings.Repeat("a", 41), "t_x", "ab\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := tenant.Parse(s)
		if err != nil {
			if !errors.Is(err, tenant.ErrInvalid) || !id.IsZero() {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if id.String() != s || len(s) < 2 || len(s) > 40 || s[0] < 'a' || s[0] > 'z' || strings.HasSuffix(s, "-") {
			t.Fatalf("Parse accepted %q", s)
		}
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				t.Fatalf("Parse accepted %q with %q", s, r)
			}
		}
		n := id.StorageName()
		if !strings.HasPrefix(n, "t_") || strings.ReplaceAll(n[2:], "_", "-") != s {
			t.Fatalf("StorageName(%q) = %q is not reversible", s, n)
		}
	})
}
