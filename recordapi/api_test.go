package recordapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/recordapi"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

// tokenOf is the bearer token of tenant id's writer in these tests.
func tokenOf(id tenant.ID) string { return "token-of-" + id.String() }

// teamAuth is a team's own credential scheme: "token-of-<tenant>" is a
// writer of that tenant; anything else is refused.
var teamAuth = ingress.AuthenticatorFunc(func(_ context.Context, token string) (ingress.Principal, error) {
	name, ok := strings.CutPrefix(token, "token-of-")
	id, err := tenant.Parse(name)
	if !ok || err != nil {
		return ingress.Principal{}, ingress.ErrUnauthenticated
	}
	return ingress.Principal{Kind: ingress.KindTenantKey, ID: "key-" + name, Tenant: id, Role: "writer"}, nil
})

// api serves the record API of env's router (with opts' hooks) on a
// loopback HTTP server behind an ingress gate, as a team would mount it.
type api struct {
	t   *testing.T
	url string
}

func serve(t *testing.T, env *tenanttest.Env, opts recordapi.Options) api {
	t.Helper()
	opts.Router = env.Router
	a, err := recordapi.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	gate, err := ingress.New(ingress.Config{Authenticator: teamAuth})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Mount(mux, gate.Data)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return api{t: t, url: srv.URL}
}

// on returns a for the (sub)test t, which its failures then stop.
func (a api) on(t *testing.T) api {
	a.t = t
	return a
}

type resp struct {
	status int
	header http.Header
	body   string
}

// code is the problem code of r ("" for a success).
func (r resp) code() string {
	var p struct{ Code string }
	_ = json.Unmarshal([]byte(r.body), &p)
	return p.Code
}

func (r resp) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// do sends a request as the tenant in ctx with body (nil: none) and
// header pairs.
func (a api) do(ctx context.Context, method, path string, body io.Reader, kv ...string) resp {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	if id, err := tenant.FromContext(ctx); err == nil {
		req.Header.Set("Authorization", "Bearer "+tokenOf(id))
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: string(b)}
}

func (a api) send(ctx context.Context, method, path, body string, kv ...string) resp {
	a.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return a.do(ctx, method, path, r, kv...)
}

func TestTheRecordAPIBehindAGate(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	var writes atomic.Int64
	a := serve(t, env, recordapi.Options{WriteTx: func(ctx context.Context, fn func(*store.Tx) error) error {
		writes.Add(1)
		return env.Router.Tx(ctx, fn)
	}})
	for _, mode := range env.Modes() {
		t.Run(string(mode)+" mode", func(t *testing.T) {
			a := a.on(t)
			ctx := env.Tenant(t, "acme-"+string(mode), mode)
			const path = "/v1/collections/notes/records/n-1"
			r := a.send(ctx, "PUT", path, `{"title":"first"}`)
			if r.status != 201 || r.header.Get("ETag") != `"1"` || r.header.Get("Location") != path {
				t.Fatalf("PUT: %v (ETag %q, Location %q)", r, r.header.Get("ETag"), r.header.Get("Location"))
			}
			if r := a.send(ctx, "PUT", path, `{"title":"second"}`, "If-Match", `"1"`); r.status != 200 || r.header.Get("ETag") != `"2"` {
				t.Fatalf("PUT with If-Match: %v", r)
			}
			if r := a.send(ctx, "PUT", path, `{"title":"stale"}`, "If-Match", `"1"`); r.status != 412 || r.code() != "precondition_failed" {
				t.Fatalf("PUT with a stale If-Match: %v", r)
			}
			if r := a.send(ctx, "POST", "/v1/collections/notes/records", `{"title":"made"}`); r.status != 201 ||
				!strings.HasPrefix(r.header.Get("Location"), "/v1/collections/notes/records/") {
				t.Fatalf("POST: %v", r)
			}
			if r := a.send(ctx, "GET", path, ""); r.status != 200 || !strings.Contains(r.body, `"second"`) || r.header.Get("ETag") != `"2"` {
				t.Fatalf("GET: %v", r)
			}
			r = a.send(ctx, "GET", "/v1/collections/notes/records?limit=1&title=eq.second", "")
			var page struct {
				Items      []store.Record `json:"items"`
				NextCursor string         `json:"next_cursor"`
			}
			if err := json.Unmarshal([]byte(r.body), &page); r.status != 200 || err != nil || len(page.Items) != 1 || page.Items[0].ID != "n-1" {
				t.Fatalf("list with a filter: %v", r)
			}
			if r := a.send(ctx, "GET", "/v1/collections", ""); r.body != `{"items":[{"name":"notes","records":2}]}`+"\n" {
				t.Fatalf("collections: %v", r)
			}
			if r := a.send(ctx, "DELETE", path, ""); r.status != 204 {
				t.Fatalf("DELETE: %v", r)
			}
			if r := a.send(ctx, "GET", path, ""); r.status != 404 || r.code() != "not_found" {
				t.Fatalf("GET after DELETE: %v", r)
			}
			if r := a.send(context.Background(), "GET", path, ""); r.status != 401 || r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("without a credential: %v", r)
			}
		})
	}
	if writes.Load() == 0 {
		t.Error("the writes did not go through Options.WriteTx")
	}
}

// TestTenantsAreIsolated: through the API, tenant B cannot read, change,
// list or count A's records, and B's answer about A's record is the very
// answer about a record that does not exist.
func TestTenantsAreIsolated(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	a := serve(t, env, recordapi.Options{})
	const path = "/v1/collections/secrets/records/s-1"
	tenanttest.Isolated(t, env, tenanttest.Probe{
		Write: func(ctx context.Context) error {
			if r := a.send(ctx, "PUT", path, `{"pin":1234}`); r.status != 201 {
				return fmt.Errorf("PUT: %v", r)
			}
			return nil
		},
		Read: func(ctx context.Context) (any, error) {
			return []string{
				a.send(ctx, "GET", path, "").String(),
				a.send(ctx, "GET", "/v1/collections/secrets/records", "").String(),
				a.send(ctx, "GET", "/v1/collections/secrets/records?pin=eq.1234", "").String(),
				a.send(ctx, "GET", "/v1/collections", "").String(),
			}, nil
		},
		Tamper: func(ctx context.Context) error {
			a.send(ctx, "PUT", path, `{"pin":0}`, "If-Match", `"1"`)
			a.send(ctx, "PUT", path, `{"pin":0}`, "If-Match", "*")
			a.send(ctx, "DELETE", path, "")
			a.send(ctx, "DELETE", path, "", "If-Match", `"1"`)
			return nil
		},
	})

	ctxA := env.Tenant(t, "alpha", store.Pooled)
	ctxB := env.Tenant(t, "beta", store.Pooled)
	if r := a.send(ctxA, "PUT", path, `{"pin":1}`); r.status != 201 {
		t.Fatalf("PUT as A: %v", r)
	}
	theirs := a.send(ctxB, "GET", path, "")
	missing := a.send(ctxB, "GET", "/v1/collections/secrets/records/nobody", "")
	if theirs.status != 404 || theirs.body != missing.body {
		t.Fatalf("B tells A's record from a missing one:\n%v\n%v", theirs, missing)
	}
	for k := range theirs.header {
		if k != "Date" && strings.Join(theirs.header[k], ",") != strings.Join(missing.header[k], ",") {
			t.Errorf("header %s differs: %q and %q", k, theirs.header[k], missing.header[k])
		}
	}
}

// TestBadInputWritesNothing: every malformed request is a 4xx
// problem+json with its code, and the tenant's data is as it was.
func TestBadInputWritesNothing(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	a := serve(t, env, recordapi.Options{BodyLimit: func(context.Context) (int64, error) { return 64, nil }})
	ctx := env.Tenant(t, "acme", store.Database)
	const path = "/v1/collections/notes/records/keep"
	if r := a.send(ctx, "PUT", path, `{"v":1}`); r.status != 201 {
		t.Fatalf("seed: %v", r)
	}
	big := `{"v":"` + strings.Repeat("x", 100) + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		header                   []string
		status                   int
		code                     string
	}{
		{"a weak ETag in If-Match", "PUT", path, `{"v":2}`, []string{"If-Match", `W/"1"`}, 400, "invalid_if_match"},
		{"a version without quotes", "DELETE", path, "", []string{"If-Match", "1"}, 400, "invalid_if_match"},
		{"If-Match on a record that does not exist", "PUT", "/v1/collections/notes/records/new", `{"v":2}`, []string{"If-Match", "*"}, 412, "precondition_failed"},
		{"a filter without an operator", "GET", "/v1/collections/notes/records?v=1", "", nil, 400, "invalid_filter"},
		{"a malformed query", "GET", "/v1/collections/notes/records?v=%zz", "", nil, 400, "invalid_filter"},
		{"a limit out of range", "GET", "/v1/collections/notes/records?limit=0", "", nil, 400, "invalid_limit"},
		{"a forged cursor", "GET", "/v1/collections/notes/records?cursor=forged", "", nil, 400, "invalid_cursor"},
		{"a body that is not JSON", "PUT", path, `{"v":`, nil, 400, "invalid_json"},
		{"an empty body", "POST", "/v1/collections/notes/records", "", nil, 400, "invalid_json"},
		{"JSON that is not an object", "PUT", path, `[1,2]`, nil, 400, "invalid_data"},
		{"a body over the limit", "PUT", path, big, nil, 413, "body_too_large"},
		{"a bad collection name", "PUT", "/v1/collections/no%20space/records/x", `{}`, nil, 400, "invalid_collection"},
		{"a bad record id", "PUT", "/v1/collections/notes/records/" + strings.Repeat("x", 300), `{}`, nil, 400, "invalid_record_id"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			a := a.on(t)
			r := a.send(ctx, tc.method, tc.path, tc.body, tc.header...)
			if r.status != tc.status || r.code() != tc.code || r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("got %v, want %d %s", r, tc.status, tc.code)
			}
			if r.header.Get("ETag") != "" || r.header.Get("Location") != "" {
				t.Errorf("a refusal carries ETag %q, Location %q", r.header.Get("ETag"), r.header.Get("Location"))
			}
		})
	}
	t.Run("a body over the limit without Content-Length is refused", func(t *testing.T) {
		a := a.on(t)
		r := a.do(ctx, "PUT", path, io.MultiReader(strings.NewReader(big))) // sent chunked
		if r.status != 413 || r.code() != "body_too_large" {
			t.Fatalf("got %v", r)
		}
	})
	if r := a.send(ctx, "GET", "/v1/collections", ""); r.body != `{"items":[{"name":"notes","records":1}]}`+"\n" {
		t.Errorf("collections after the refusals: %v", r)
	}
	if r := a.send(ctx, "GET", path, ""); r.status != 200 || r.header.Get("ETag") != `"1"` || !strings.Contains(r.body, `"v":1`) {
		t.Errorf("the record changed: %v", r)
	}
}

func TestHooks(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	ctx := env.Tenant(t, "acme", store.Pooled)
	failure := errors.New("disk on fire at /secret/path")
	t.Run("PageLimit refuses a list before it is read", func(t *testing.T) {
		a := serve(t, env, recordapi.Options{PageLimit: func(_ context.Context, o *store.ListOptions) error {
			if o.Limit > 2 {
				return store.ErrInvalidLimit
			}
			return nil
		}})
		if r := a.send(ctx, "GET", "/v1/collections/c/records?limit=3", ""); r.status != 400 || r.code() != "invalid_limit" {
			t.Fatalf("got %v", r)
		}
		if r := a.send(ctx, "GET", "/v1/collections/c/records?limit=2", ""); r.status != 200 {
			t.Fatalf("got %v", r)
		}
	})
	t.Run("an unknown error is 500 internal without its text", func(t *testing.T) {
		a := serve(t, env, recordapi.Options{WriteTx: func(context.Context, func(*store.Tx) error) error { return failure }})
		r := a.send(ctx, "PUT", "/v1/collections/c/records/r", `{}`)
		if r.status != 500 || r.code() != "internal" || strings.Contains(r.body, "secret") {
			t.Fatalf("got %v", r)
		}
	})
	t.Run("WriteError answers what the API does not map", func(t *testing.T) {
		got := make(chan error, 1)
		a := serve(t, env, recordapi.Options{
			BodyLimit: func(context.Context) (int64, error) { return 0, failure },
			WriteError: func(w http.ResponseWriter, _ *http.Request, err error) {
				got <- err
				w.WriteHeader(http.StatusTeapot)
			},
		})
		if r := a.send(ctx, "POST", "/v1/collections/c/records", `{}`); r.status != http.StatusTeapot {
			t.Fatalf("got %v", r)
		}
		if err := <-got; !errors.Is(err, failure) {
			t.Fatalf("WriteError saw %v", err)
		}
		if r := a.send(ctx, "GET", "/v1/collections", ""); r.body != `{"items":[]}`+"\n" {
			t.Errorf("a refused write wrote: %v", r)
		}
	})
}

// quota is a store.Quotas of one record per tenant.
type quota struct{}

func (quota) StorageQuota(context.Context, tenant.ID) (int64, int64, error) { return 1, 0, nil }

func TestAWriteOverTheQuotaIs403WithTheLimit(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{Quotas: quota{}})
	a := serve(t, env, recordapi.Options{})
	ctx := env.Tenant(t, "acme", store.Pooled)
	if r := a.send(ctx, "PUT", "/v1/collections/c/records/one", `{}`); r.status != 201 {
		t.Fatalf("first record: %v", r)
	}
	r := a.send(ctx, "PUT", "/v1/collections/c/records/two", `{}`)
	var p struct {
		Code, Resource string
		Limit, Usage   int64
	}
	if err := json.Unmarshal([]byte(r.body), &p); err != nil || r.status != 403 || p.Code != "quota_exceeded" ||
		p.Resource != "records" || p.Limit != 1 || p.Usage != 1 {
		t.Fatalf("got %v", r)
	}
	if r := a.send(ctx, "GET", "/v1/collections/c/records/two", ""); r.status != 404 {
		t.Errorf("the refused record was written: %v", r)
	}
}

func TestNewNeedsARouter(t *testing.T) {
	if _, err := recordapi.New(recordapi.Options{}); err == nil {
		t.Fatal("New without a Router succeeded")
	}
}
