package server_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// nested returns a JSON object nested depth levels deep.
func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + `{}` + strings.Repeat(`}`, depth-1)
}

// TestBadInputGetsAClearErrorAndWritesNothing sends every kind of bad
// request of the contract and checks both the answer and that the tenant's
// data did not change.
func TestBadInputGetsAClearErrorAndWritesNothing(t *testing.T) {
	e := newEnv(t)
	tok := e.tenantWithKey("acme", "pooled")
	other := e.tenantWithKey("beta", "database")
	// This test sends more requests than a standard tenant's burst.
	e.setTier("acme", "enterprise")
	e.setTier("beta", "enterprise")
	const rec = "/v1/collections/notes/records/n-1"
	want(t, e.req("PUT", rec, tok, `{"v":1}`), 201, "")

	// unchanged checks that acme still has exactly n-1 at version 1 and
	// beta has nothing.
	unchanged := func(t *testing.T) {
		t.Helper()
		r := e.req("GET", rec, tok, nil)
		want(t, r, 200, "")
		if r.header.Get("ETag") != `"1"` || !strings.Contains(string(r.body), `"data":{"v":1}`) {
			t.Fatalf("n-1 changed: %s", r.body)
		}
		if n := e.count(tok, "notes"); n != 1 {
			t.Fatalf("acme has %d notes, want 1", n)
		}
		if r := e.req("GET", "/v1/collections", other, nil); !strings.Contains(string(r.body), `"items":[]`) {
			t.Fatalf("beta has collections: %s", r.body)
		}
	}

	big := `{"pad":"` + strings.Repeat("x", 1<<20) + `"}`
	cases := []struct {
		name         string
		method, path string
		token        string
		body         any
		hdr          []string
		status       int
		code         string
	}{
		{"a body over 1 MiB is 413", "PUT", rec, tok, big, nil, 413, "body_too_large"},
		{"a body over 1 MiB on POST is 413", "POST", "/v1/collections/notes/records", tok, big, nil, 413, "body_too_large"},
		{"malformed JSON is 400", "PUT", rec, tok, `{"v":`, nil, 400, "invalid_json"},
		{"trailing garbage is 400", "PUT", rec, tok, `{"v":2} x`, nil, 400, "invalid_json"},
		{"an empty body is 400", "PUT", rec, tok, ``, nil, 400, "invalid_json"},
		{"malformed JSON on POST is 400", "POST", "/v1/collections/notes/records", tok, `nope`, nil, 400, "invalid_json"},
		{"an array is not an object", "PUT", rec, tok, `[1,2]`, nil, 400, "invalid_data"},
		{"a number is not an object", "PUT", rec, tok, `42`, nil, 400, "invalid_data"},
		{"a string is not an object", "POST", "/v1/collections/notes/records", tok, `"s"`, nil, 400, "invalid_data"},
		{"null is not an object", "PUT", rec, tok, `null`, nil, 400, "invalid_data"},
		{"nesting deeper than 64 is 400", "PUT", rec, tok, nested(65), nil, 400, "invalid_data"},
		{"nesting deeper than 64 on POST is 400", "POST", "/v1/collections/notes/records", tok, nested(100), nil, 400, "invalid_data"},
		{"an invalid collection is 400", "PUT", "/v1/collections/Notes/records/n-1", tok, `{}`, nil, 400, "invalid_collection"},
		{"a collection starting with a digit is 400", "GET", "/v1/collections/1notes/records", tok, nil, nil, 400, "invalid_collection"},
		{"a too long collection is 400", "POST", "/v1/collections/" + strings.Repeat("c", 64) + "/records", tok, `{}`, nil, 400, "invalid_collection"},
		{"an invalid record id is 400", "PUT", "/v1/collections/notes/records/n%201", tok, `{}`, nil, 400, "invalid_record_id"},
		{"a too long record id is 400", "GET", "/v1/collections/notes/records/" + strings.Repeat("r", 129), tok, nil, nil, 400, "invalid_record_id"},
		{"an encoded slash in a record id is 400", "DELETE", "/v1/collections/notes/records/a%2Fb", tok, nil, nil, 400, "invalid_record_id"},
		{"a malformed If-Match is 400", "PUT", rec, tok, `{"v":2}`, []string{"If-Match", "1"}, 400, "invalid_if_match"},
		{"a weak If-Match is 400", "PUT", rec, tok, `{"v":2}`, []string{"If-Match", `W/"1"`}, 400, "invalid_if_match"},
		{"If-Match version 0 is 400", "DELETE", rec, tok, nil, []string{"If-Match", `"0"`}, 400, "invalid_if_match"},
		{"If-Match with a list is 400", "DELETE", rec, tok, nil, []string{"If-Match", `"1", "2"`}, 400, "invalid_if_match"},
		{"a bad limit is 400", "GET", "/v1/collections/notes/records?limit=abc", tok, nil, nil, 400, "invalid_limit"},
		{"limit 0 is 400", "GET", "/v1/collections/notes/records?limit=0", tok, nil, nil, 400, "invalid_limit"},
		{"limit over 1000 is 400", "GET", "/v1/collections/notes/records?limit=1001", tok, nil, nil, 400, "invalid_limit"},
		{"a filter without eq. is 400", "GET", "/v1/collections/notes/records?v=gt.1", tok, nil, nil, 400, "invalid_filter"},
		{"a filter on a bad field is 400", "GET", "/v1/collections/notes/records?a-b=eq.1", tok, nil, nil, 400, "invalid_filter"},
		{"a garbage cursor is 400", "GET", "/v1/collections/notes/records?cursor=abc", tok, nil, nil, 400, "invalid_cursor"},
		{"an unknown route is 404", "GET", "/v2/things", tok, nil, nil, 404, "route_not_found"},
		{"the root is 404", "GET", "/", "", nil, nil, 404, "route_not_found"},
		{"a partial route is 404", "PUT", "/v1/collections/notes", tok, `{}`, nil, 404, "route_not_found"},
		{"a trailing slash is 404", "GET", "/v1/collections/", tok, nil, nil, 404, "route_not_found"},
		{"a too long route is 404", "PUT", rec + "/extra", tok, `{}`, nil, 404, "route_not_found"},
		{"a wrong method is 405", "PATCH", rec, tok, `{}`, nil, 405, "method_not_allowed"},
		{"POST on a record is 405", "POST", rec, tok, `{}`, nil, 405, "method_not_allowed"},
		{"PUT on a collection is 405", "PUT", "/v1/collections/notes/records", tok, `{}`, nil, 405, "method_not_allowed"},
		{"no credential is 401", "PUT", rec, "", `{"v":2}`, nil, 401, "unauthenticated"},
		{"an unknown credential is 401", "PUT", rec, "bk_aaaaaaaaaaaaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", `{"v":2}`, nil, 401, "unauthenticated"},
		{"a garbage credential is 401", "DELETE", rec, "garbage", nil, nil, 401, "unauthenticated"},
		{"a key with a wrong secret is 401", "DELETE", rec, tok[:len(tok)-2] + "xx", nil, nil, 401, "unauthenticated"},
		{"the wrong scheme is 401", "DELETE", rec, "", nil, []string{"Authorization", "Basic " + tok}, 401, "unauthenticated"},
		{"a tenant key on the control plane is 403", "POST", "/v1/admin/tenants", tok, `{"id":"gamma"}`, nil, 403, "forbidden"},
		{"a tenant key may not delete tenants", "DELETE", "/v1/admin/tenants/beta", tok, nil, nil, 403, "forbidden"},
		{"a tenant key may not issue keys", "POST", "/v1/admin/tenants/acme/keys", tok, `{"role":"admin"}`, nil, 403, "forbidden"},
		{"the operator token on the data plane is 403", "PUT", rec, e.op, `{"v":2}`, nil, 403, "forbidden"},
		{"the operator token may not read records", "GET", rec, e.op, nil, nil, 403, "forbidden"},
		{"no credential on the control plane is 401", "DELETE", "/v1/admin/tenants/acme", "", nil, nil, 401, "unauthenticated"},
		{"a wrong operator token is 401", "DELETE", "/v1/admin/tenants/acme", e.op + "x", nil, nil, 401, "unauthenticated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := e.on(t)
			r := e.req(tc.method, tc.path, tc.token, tc.body, tc.hdr...)
			want(t, r, tc.status, tc.code)
			var p map[string]any
			if tc.method != "HEAD" {
				p = r.json(t)
				for _, k := range []string{"type", "title", "status", "detail", "code"} {
					if _, ok := p[k]; !ok {
						t.Errorf("problem lacks %q: %s", k, r.body)
					}
				}
				if p["type"] != "https://bulkhead.dev/problems/"+tc.code || p["status"] != float64(tc.status) {
					t.Errorf("problem type/status: %s", r.body)
				}
			}
			switch tc.status {
			case 401:
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without WWW-Authenticate: %v", r.header)
				}
			case 405:
				if r.header.Get("Allow") == "" {
					t.Errorf("405 without Allow")
				}
			}
			if r.header.Get("X-Request-ID") == "" {
				t.Error("no X-Request-ID")
			}
			unchanged(t)
		})
	}

	t.Run("a chunked body over 1 MiB is 413", func(t *testing.T) {
		e := e.on(t)
		// No Content-Length: the limit must hold while reading.
		body := io.MultiReader(strings.NewReader(`{"pad":"`), bytes.NewReader(bytes.Repeat([]byte("x"), 2<<20)), strings.NewReader(`"}`))
		req, _ := http.NewRequest("PUT", e.http.URL+rec, body)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.ContentLength = -1
		res, err := e.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		want(t, resp{status: res.StatusCode, header: res.Header, body: b}, 413, "body_too_large")
		unchanged(t)
	})
	t.Run("1 MiB bodies and 64 levels of nesting are accepted", func(t *testing.T) {
		e := e.on(t)
		fits := `{"pad":"` + strings.Repeat("x", 1<<20-len(`{"pad":""}`)) + `"}`
		want(t, e.req("PUT", "/v1/collections/big/records/b", tok, fits), 201, "")
		want(t, e.req("PUT", "/v1/collections/big/records/d", tok, nested(64)), 201, "")
		want(t, e.req("DELETE", "/v1/collections/big/records/b", tok, nil), 204, "")
		want(t, e.req("DELETE", "/v1/collections/big/records/d", tok, nil), 204, "")
	})
	t.Run("405 names the allowed methods", func(t *testing.T) {
		e := e.on(t)
		r := e.req("PATCH", rec, tok, `{}`)
		if got := r.header.Get("Allow"); got != "DELETE, GET, HEAD, PUT" {
			t.Errorf("Allow %q", got)
		}
		r = e.req("DELETE", "/v1/admin/tenants", e.op, nil)
		want(t, r, 405, "method_not_allowed")
		if got := r.header.Get("Allow"); got != "GET, HEAD, POST" {
			t.Errorf("Allow %q", got)
		}
	})
}

// TestTheCredentialAloneSelectsTheTenant sends an X-Tenant-ID header, a
// tenant_id body field and a tenant_id query filter naming another tenant;
// none of them may change the tenant of the key.
func TestTheCredentialAloneSelectsTheTenant(t *testing.T) {
	e := newEnv(t)
	a := e.tenantWithKey("acme", "pooled")
	b := e.tenantWithKey("beta", "pooled")
	want(t, e.req("PUT", "/v1/collections/notes/records/shared-id", b, `{"owner":"beta"}`), 201, "")

	r := e.req("PUT", "/v1/collections/notes/records/shared-id", a, `{"owner":"acme","tenant_id":"beta"}`, "X-Tenant-ID", "beta")
	want(t, r, 201, "") // created in acme: beta's record with that id is not acme's
	r = e.req("POST", "/v1/collections/notes/records", a, `{"tenant_id":"beta"}`, "X-Tenant-ID", "beta")
	want(t, r, 201, "")

	r = e.req("GET", "/v1/collections/notes/records/shared-id", b, nil)
	if !strings.Contains(string(r.body), `"owner":"beta"`) || r.header.Get("ETag") != `"1"` {
		t.Fatalf("beta's record was changed through acme's key: %s", r.body)
	}
	if n := e.count(b, "notes"); n != 1 {
		t.Fatalf("beta has %d notes, want 1", n)
	}
	if n := e.count(a, "notes"); n != 2 {
		t.Fatalf("acme has %d notes, want 2", n)
	}
	r = e.req("GET", "/v1/collections/notes/records?tenant_id=eq.beta", a, nil, "X-Tenant-ID", "beta")
	want(t, r, 200, "")
	if strings.Contains(string(r.body), `"owner":"beta"`) || strings.Count(string(r.body), `"collection"`) != 2 {
		t.Fatalf("acme's filtered list: %s", r.body)
	}
	r = e.req("GET", "/v1/collections/notes/records/shared-id", a, nil, "X-Tenant-ID", "beta")
	if !strings.Contains(string(r.body), `"owner":"acme"`) {
		t.Fatalf("X-Tenant-ID changed the tenant: %s", r.body)
	}
}
