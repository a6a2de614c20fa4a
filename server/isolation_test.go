package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// sameAbsence fails unless two responses are indistinguishable: status,
// the headers a client sees (apart from X-Request-ID and Date) and body.
// RateLimit-* headers are ignored too: they carry only the caller's own
// budget (one request less after each call, whatever it asked for), so
// they reveal nothing about another tenant's data.
func sameAbsence(t *testing.T, what string, got, missing resp) {
	t.Helper()
	if got.status != 404 || missing.status != 404 {
		t.Fatalf("%s: statuses %d and %d, want 404", what, got.status, missing.status)
	}
	if string(got.body) != string(missing.body) {
		t.Fatalf("%s: bodies differ:\n%s\n%s", what, got.body, missing.body)
	}
	for k := range mergeKeys(got.header, missing.header) {
		if k == "X-Request-Id" || k == "Date" || strings.HasPrefix(k, "Ratelimit-") {
			continue
		}
		if a, b := strings.Join(got.header.Values(k), ","), strings.Join(missing.header.Values(k), ","); a != b {
			t.Fatalf("%s: header %s differs: %q vs %q", what, k, a, b)
		}
	}
}

func mergeKeys(hs ...map[string][]string) map[string]bool {
	out := map[string]bool{}
	for _, h := range hs {
		for k := range h {
			out[k] = true
		}
	}
	return out
}

func TestCrossTenantIsolation(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { testCrossTenantIsolation(t, newEnv(t), mode) })
	}
}

// testCrossTenantIsolation is the server's isolation suite for one mode:
// cross-tenant 404s, cursors, suspension, revocation and deletion.
func testCrossTenantIsolation(t *testing.T, e *env, mode string) {
	a := e.tenantWithKey("acme", mode)
	b := e.tenantWithKey("beta", mode)
	const bRec = "/v1/collections/notes/records/b-secret"
	want(t, e.req("PUT", bRec, b, `{"owner":"beta","v":1}`), 201, "")
	for _, id := range []string{"a1", "a2", "a3"} {
		want(t, e.req("PUT", "/v1/collections/notes/records/"+id, a, `{"owner":"acme"}`), 201, "")
	}
	for _, id := range []string{"b1", "b2", "b3"} {
		want(t, e.req("PUT", "/v1/collections/notes/records/"+id, b, `{"owner":"beta"}`), 201, "")
	}

	t.Run("B's record id with A's key is a 404 identical to a missing id", func(t *testing.T) {
		e := e.on(t)
		sameAbsence(t, "GET",
			e.req("GET", bRec, a, nil),
			e.req("GET", "/v1/collections/notes/records/no-such-id", a, nil))
		sameAbsence(t, "DELETE",
			e.req("DELETE", bRec, a, nil),
			e.req("DELETE", "/v1/collections/notes/records/no-such-id", a, nil))
		sameAbsence(t, "GET in a collection A does not have",
			e.req("GET", "/v1/collections/notes/records/b-secret", a, nil),
			e.req("GET", "/v1/collections/nothing/records/b-secret", a, nil))
		if r := e.req("GET", bRec, a, nil); strings.Contains(string(r.body), "b-secret") {
			t.Fatalf("404 echoes the record id: %s", r.body)
		}
		// A conditional write on B's id is refused as for a missing record.
		want(t, e.req("PUT", bRec, a, `{"owner":"acme"}`, "If-Match", `"1"`), 412, "precondition_failed")
		r := e.req("GET", bRec, b, nil)
		if r.header.Get("ETag") != `"1"` || !strings.Contains(string(r.body), `"owner":"beta"`) {
			t.Fatalf("B's record changed: %s", r.body)
		}
	})
	t.Run("lists and collections hold only the key's tenant", func(t *testing.T) {
		e := e.on(t)
		r := e.req("GET", "/v1/collections/notes/records?limit=1000", a, nil)
		want(t, r, 200, "")
		if strings.Contains(string(r.body), "beta") || strings.Count(string(r.body), `"collection"`) != 3 {
			t.Fatalf("A's list: %s", r.body)
		}
		if n := e.count(a, "notes"); n != 3 {
			t.Fatalf("A has %d notes, want 3", n)
		}
		if n := e.count(b, "notes"); n != 4 {
			t.Fatalf("B has %d notes, want 4", n)
		}
	})
	t.Run("A's cursor used by B is 400 invalid_cursor", func(t *testing.T) {
		e := e.on(t)
		r := e.req("GET", "/v1/collections/notes/records?limit=1", a, nil)
		want(t, r, 200, "")
		var page struct {
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil || page.NextCursor == "" {
			t.Fatalf("no cursor: %s", r.body)
		}
		q := "?limit=1&cursor=" + url.QueryEscape(page.NextCursor)
		want(t, e.req("GET", "/v1/collections/notes/records"+q, a, nil), 200, "")
		want(t, e.req("GET", "/v1/collections/notes/records"+q, b, nil), 400, "invalid_cursor")
		// Bound to collection and filter too.
		want(t, e.req("GET", "/v1/collections/other/records"+q, a, nil), 400, "invalid_cursor")
		want(t, e.req("GET", "/v1/collections/notes/records"+q+"&owner=eq.acme", a, nil), 400, "invalid_cursor")

		t.Run("a tampered cursor is 400", func(t *testing.T) {
			payload, mac, _ := strings.Cut(page.NextCursor, ".")
			raw, err := base64.RawURLEncoding.DecodeString(payload)
			if err != nil {
				t.Fatalf("cursor format changed? %v", err)
			}
			forged := strings.Replace(string(raw), `"acme"`, `"beta"`, 1)
			for _, c := range []string{
				base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + mac,
				tamperTail(page.NextCursor),
				"x" + page.NextCursor,
				payload,
			} {
				want(t, e.req("GET", "/v1/collections/notes/records?limit=1&cursor="+url.QueryEscape(c), a, nil), 400, "invalid_cursor")
				want(t, e.req("GET", "/v1/collections/notes/records?limit=1&cursor="+url.QueryEscape(c), b, nil), 400, "invalid_cursor")
			}
		})
	})
	t.Run("a suspended tenant's key is 403 and resume restores it", func(t *testing.T) {
		e := e.on(t)
		r := e.req("POST", "/v1/admin/tenants/acme/suspend", e.op, nil)
		want(t, r, 200, "")
		if r.json(t)["state"] != "suspended" {
			t.Fatalf("suspend: %s", r.body)
		}
		want(t, e.req("GET", "/v1/collections/notes/records/a1", a, nil), 403, "tenant_suspended")
		want(t, e.req("PUT", "/v1/collections/notes/records/a9", a, `{}`), 403, "tenant_suspended")
		want(t, e.req("GET", "/v1/collections/notes/records/b1", b, nil), 200, "")
		want(t, e.req("POST", "/v1/admin/tenants/acme/suspend", e.op, nil), 200, "")
		want(t, e.req("POST", "/v1/admin/tenants/acme/resume", e.op, nil), 200, "")
		want(t, e.req("GET", "/v1/collections/notes/records/a1", a, nil), 200, "")
		want(t, e.req("GET", "/v1/collections/notes/records/a9", a, nil), 404, "not_found")
	})
	t.Run("a revoked key is 401 on the next request", func(t *testing.T) {
		e := e.on(t)
		tok, keyID := e.createKey("acme", "writer")
		want(t, e.req("GET", "/v1/collections/notes/records/a1", tok, nil), 200, "")
		// Revoking through the other tenant's path is not found and revokes nothing.
		want(t, e.req("DELETE", "/v1/admin/tenants/beta/keys/"+keyID, e.op, nil), 404, "key_not_found")
		want(t, e.req("GET", "/v1/collections/notes/records/a1", tok, nil), 200, "")
		want(t, e.req("DELETE", "/v1/admin/tenants/acme/keys/"+keyID, e.op, nil), 204, "")
		want(t, e.req("GET", "/v1/collections/notes/records/a1", tok, nil), 401, "unauthenticated")
		want(t, e.req("GET", "/v1/collections/notes/records/a1", a, nil), 200, "")
	})
	t.Run("deleting A leaves B untouched and recreating A starts empty", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("DELETE", "/v1/admin/tenants/acme", e.op, nil), 204, "")
		want(t, e.req("GET", "/v1/collections/notes/records/a1", a, nil), 401, "unauthenticated")
		want(t, e.req("GET", "/v1/admin/tenants/acme", e.op, nil), 404, "tenant_not_found")
		want(t, e.req("DELETE", "/v1/admin/tenants/acme", e.op, nil), 404, "tenant_not_found")
		if n := e.count(b, "notes"); n != 4 {
			t.Fatalf("B has %d notes after A's deletion, want 4", n)
		}
		want(t, e.req("GET", bRec, b, nil), 200, "")

		a2 := e.tenantWithKey("acme", mode)
		want(t, e.req("GET", "/v1/collections/notes/records/a1", a2, nil), 404, "not_found")
		r := e.req("GET", "/v1/collections", a2, nil)
		if !strings.Contains(string(r.body), `"items":[]`) {
			t.Fatalf("recreated A is not empty: %s", r.body)
		}
		want(t, e.req("GET", "/v1/collections/notes/records/a1", a, nil), 401, "unauthenticated")
		r = e.req("GET", "/v1/admin/tenants/acme", e.op, nil)
		if u := r.json(t)["usage"].(map[string]any); u["records"] != float64(0) {
			t.Fatalf("recreated A's usage: %s", r.body)
		}
	})
}

func TestSchemaIsolationIsRefusedOnSQLite(t *testing.T) {
	e := newEnv(t)
	r := e.req("POST", "/v1/admin/tenants", e.op, map[string]string{"id": "acme", "isolation": "schema"})
	want(t, r, 400, "isolation_unsupported")
	if d := r.json(t)["detail"].(string); !strings.Contains(d, "PostgreSQL") {
		t.Errorf("detail does not say schema needs PostgreSQL: %q", d)
	}
	want(t, e.req("GET", "/v1/admin/tenants/acme", e.op, nil), 404, "tenant_not_found")
}

// tamperTail changes the cursor's last two characters (the end of its MAC)
// to two that differ from them and still decode under strict base64.
func tamperTail(c string) string {
	tail := "AA"
	if strings.HasSuffix(c, tail) {
		tail = "BA"
	}
	return c[:len(c)-2] + tail
}
