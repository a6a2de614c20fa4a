package recordapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/recordapi"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

// A read-after token the tenant did not get from a write is refused with
// 400 invalid_read_after on every read route, and the read does not run.
func TestReadsRefuseTokensThatAreNotTheTenantsOwn(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	a := serve(t, env, recordapi.Options{})
	mode := env.Modes()[0]
	acme := env.Tenant(t, "acme", mode)
	const path = "/v1/collections/notes/records/n-1"
	r := a.send(acme, "PUT", path, `{"title":"first"}`)
	if r.status != 201 {
		t.Fatalf("PUT: %v", r)
	}
	if tok := r.header.Get(recordapi.CommitTokenHeader); tok != "" {
		t.Fatalf("a commit token %q from a shard without a replica", tok)
	}
	for _, route := range []string{path, "/v1/collections/notes/records", "/v1/collections"} {
		for _, tok := range []string{"garbage", "AQID.BAUG", strings.Repeat("A", 600), "a;b", " "} {
			r := a.send(acme, "GET", route, "", recordapi.ReadAfterHeader, tok)
			if r.status != 400 || r.code() != "invalid_read_after" {
				t.Fatalf("GET %s with token %q: %v", route, tok, r)
			}
		}
		if r := a.send(acme, "GET", route, ""); r.status != 200 {
			t.Fatalf("GET %s without a token: %v", route, r)
		}
	}
	t.Run("two tokens are refused", func(t *testing.T) {
		req, _ := http.NewRequest("GET", a.url+path, nil)
		req.Header.Set("Authorization", "Bearer token-of-acme")
		req.Header.Add(recordapi.ReadAfterHeader, "x")
		req.Header.Add(recordapi.ReadAfterHeader, "y")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Fatalf("two tokens: %d", res.StatusCode)
		}
	})
}
