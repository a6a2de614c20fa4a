package ingress_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ratelimit"
)

func TestAuthorizationHeader(t *testing.T) {
	f := newFixture(t, func(c *ingress.Config) { c.Now = newWindowEachTime() })
	read := "/v1/collections/notes/records/n1"
	const ask = `Bearer realm="bulkhead"`
	const invalid = `Bearer realm="bulkhead", error="invalid_token"`
	for _, tc := range []struct {
		name string
		hdr  []string
		www  string
	}{
		{"no header", nil, ask},
		{"an empty header", []string{"Authorization", ""}, ask},
		{"another scheme", []string{"Authorization", "Basic " + acmeWriter}, ask},
		{"no scheme", []string{"Authorization", acmeWriter}, ask},
		{"a scheme without a token", []string{"Authorization", "Bearer"}, ask},
		{"a scheme and blanks", []string{"Authorization", "Bearer    "}, ask},
		{"a tab for a space", []string{"Authorization", "Bearer\t" + acmeWriter}, ask},
		{"two headers, both valid", []string{"Authorization", "Bearer " + acmeWriter, "Authorization", "Bearer " + acmeWriter}, ask},
		{"two headers, the other invalid", []string{"Authorization", "Bearer nope", "Authorization", "Bearer " + acmeWriter}, ask},
		{"two headers, one empty", []string{"Authorization", "", "Authorization", "Bearer " + acmeWriter}, ask},
		{"a token over MaxTokenLen", []string{"Authorization", "Bearer " + strings.Repeat("a", ingress.MaxTokenLen+1)}, ask},
		{"an unknown token", []string{"Authorization", "Bearer nope"}, invalid},
		{"two tokens in one header", []string{"Authorization", "Bearer " + acmeWriter + ", Bearer " + betaWriter}, invalid},
		{"a token with a blank inside", []string{"Authorization", "Bearer " + acmeWriter + " " + betaWriter}, invalid},
		{"the token as a query parameter", []string{"X-Query", "?access_token=" + acmeWriter}, ask},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := read
			hdr := tc.hdr
			if len(hdr) == 2 && hdr[0] == "X-Query" {
				path, hdr = read+hdr[1], nil
			}
			n := len(f.entries(audit.ControlChain))
			r := f.denied(401, "unauthenticated", "GET", path, "", hdr...)
			if got := r.header.Get("WWW-Authenticate"); got != tc.www {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.www)
			}
			if r.doc.Detail != ingress.DetailUnauthenticated {
				t.Errorf("detail %q", r.doc.Detail)
			}
			es := f.entries(audit.ControlChain)
			if len(es) != n+1 {
				t.Fatalf("%d new control entries, want 1", len(es)-n)
			}
			if e := es[n]; e.Principal != "anonymous" || e.Action != "record.read" || e.Decision != "deny:unauthenticated" {
				t.Errorf("entry %+v", e)
			}
		})
	}
	// The control plane answers alike.
	f.denied(401, "unauthenticated", "POST", "/v1/admin/tenants/acme/suspend", "")
	f.audited(audit.ControlChain, "anonymous", "tenant.suspend", "deny:unauthenticated")
	f.denied(401, "unauthenticated", "POST", "/v1/admin/tenants/acme/suspend", "", "Authorization", "Bearer "+operator, "Authorization", "Bearer "+operator)
	if es := f.entries("acme"); len(es) != 0 {
		t.Errorf("unauthenticated requests on a tenant's chain: %+v", es)
	}

	// The scheme is case-insensitive; blanks around the token do not count.
	for _, v := range []string{"bearer " + acmeWriter, "BEARER " + acmeWriter, "Bearer   " + acmeWriter + "  "} {
		if got := f.passed("GET", read, "", "Authorization", v); got.Principal.ID != "k-acme-w" {
			t.Errorf("%q: the handler saw %+v", v, got)
		}
	}
}

func TestParseBearer(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Bearer abc", "abc"},
		{"bearer abc", "abc"},
		{"Bearer  abc ", "abc"},
		{"Bearer a b", "a b"},
		{"Bearer", ""},
		{"Bearer ", ""},
		{"Bearerabc", ""},
		{"Basic abc", ""},
		{"Bearer\tabc", ""},
		{" Bearer abc", ""},
		{"Bearer " + strings.Repeat("x", ingress.MaxTokenLen), strings.Repeat("x", ingress.MaxTokenLen)},
		{"Bearer " + strings.Repeat("x", ingress.MaxTokenLen+1), ""},
	} {
		if got := ingress.ParseBearer(tc.in); got != tc.want {
			t.Errorf("ParseBearer(%.20q) = %.20q, want %.20q", tc.in, got, tc.want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Add("Authorization", "Bearer a")
	if ingress.BearerToken(r) != "a" {
		t.Error("one header: no token")
	}
	r.Header.Add("Authorization", "Bearer a")
	if ingress.BearerToken(r) != "" {
		t.Error("two headers: a token")
	}
}

func TestDenialProblem(t *testing.T) {
	d := &ingress.Denial{Reason: ingress.Throttled, Code: "rate_limited", Detail: "slow down",
		RetryAfter: 1500 * time.Millisecond,
		RateLimit:  ratelimit.Decision{Limit: 10, Remaining: -1, Reset: 2100 * time.Millisecond}}
	p := ingress.DenialProblem(d)
	for k, want := range map[string]string{"Retry-After": "2", "RateLimit-Limit": "10", "RateLimit-Remaining": "0", "RateLimit-Reset": "3"} {
		if got := p.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if p.Status != http.StatusTooManyRequests {
		t.Errorf("status %d", p.Status)
	}
	for _, tc := range []struct {
		r    ingress.Reason
		want int
	}{{ingress.Unauthenticated, 401}, {ingress.Forbidden, 403}, {ingress.Throttled, 429}, {ingress.Unavailable, 503}} {
		if got := (&ingress.Denial{Reason: tc.r}).Status(); got != tc.want {
			t.Errorf("reason %d: %d, want %d", tc.r, got, tc.want)
		}
	}
}

func TestHTTPOptions(t *testing.T) {
	var wrote []error
	f := newFixture(t, nil)
	f.gate.SetHTTPOptions(ingress.HTTPOptions{
		// This team names the collection in a header.
		Collection: func(r *http.Request) string { return r.Header.Get("X-Collection") },
		WriteError: func(w http.ResponseWriter, _ *http.Request, err error) {
			wrote = append(wrote, err)
			w.WriteHeader(http.StatusBadGateway)
		},
	})
	f.denied(403, "forbidden", "GET", "/v1/collections/notes/records/n1", acmeWriter, "X-Collection", "invoices", ingress.ActAsHeader, "beta")
	if e := f.audited("acme", "tenant_key:k-acme-w@acme", "record.read", "deny:forbidden"); e.Resource != "tenant/acme/collections/invoices" {
		t.Errorf("resource %q", e.Resource)
	}
	// Denials stay the gate's; failures go to WriteError.
	if r := f.do("GET", "/v1/collections/notes/records/n1", broken); r.status != http.StatusBadGateway || len(wrote) != 1 {
		t.Errorf("an internal failure: %d, WriteError saw %v", r.status, wrote)
	}
	if f.runs() != 0 {
		t.Error("the handler ran")
	}
}
