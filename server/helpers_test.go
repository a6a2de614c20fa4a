package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/telemetry"
)

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a real server on a loopback httptest.Server over a data dir in
// t.TempDir().
type env struct {
	t     testing.TB
	dir   string
	srv   *server.Server
	http  *httptest.Server
	op    string // operator token
	logs  *syncBuffer
	opts  server.Options
	close func()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvIn(t, t.TempDir(), server.Options{})
}

func newEnvIn(t testing.TB, dir string, opts server.Options) *env {
	t.Helper()
	logs := &syncBuffer{}
	opts.DataDir = dir
	if opts.Logger == nil {
		opts.Logger = telemetry.NewLogger(logs, slog.LevelDebug)
	}
	s, err := server.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open server: %v", err)
	}
	op, err := server.ReadOperatorToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	e := &env{t: t, dir: dir, srv: s, http: hs, op: op, logs: logs, opts: opts}
	var once sync.Once
	e.close = func() {
		once.Do(func() {
			hs.Close()
			if err := s.Close(); err != nil {
				t.Errorf("close server: %v", err)
			}
		})
	}
	t.Cleanup(e.close)
	return e
}

// on returns a copy of e that reports to t (for subtests).
func (e *env) on(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// resp is a response read whole.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

// code returns the problem code of an error response.
func (r resp) code() string {
	var p struct{ Code string }
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

// req sends one request. body is sent as is if it is a string or []byte,
// as JSON otherwise (nil: no body). hdr holds extra header pairs.
func (e *env) req(method, path, token string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	r, err := http.NewRequest(method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := e.http.Client().Do(r)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// want fails the test unless r has the status (and, for problems, the code).
func want(t testing.TB, r resp, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	if code != "" {
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("Content-Type %q, want application/problem+json; body: %s", ct, r.body)
		}
		if got := r.code(); got != code {
			t.Fatalf("code %q, want %q; body: %s", got, code, r.body)
		}
	}
}

func (e *env) createTenant(id, isolation string) map[string]any {
	e.t.Helper()
	r := e.req("POST", "/v1/admin/tenants", e.op, map[string]string{"id": id, "isolation": isolation})
	want(e.t, r, 201, "")
	return r.json(e.t)
}

func (e *env) createKey(id, role string) (token, keyID string) {
	e.t.Helper()
	r := e.req("POST", "/v1/admin/tenants/"+id+"/keys", e.op, map[string]string{"role": role, "name": role + " key"})
	want(e.t, r, 201, "")
	m := r.json(e.t)
	return m["token"].(string), m["id"].(string)
}

// tenantWithKey creates a tenant and an admin key for it.
func (e *env) tenantWithKey(id, isolation string) string {
	e.t.Helper()
	e.createTenant(id, isolation)
	tok, _ := e.createKey(id, "admin")
	return tok
}

// setTier moves a tenant to tier (for example limits.Enterprise, for tests
// that send more requests than a standard tenant's rate limit allows).
func (e *env) setTier(id, tier string) {
	e.t.Helper()
	want(e.t, e.req("PATCH", "/v1/admin/tenants/"+id, e.op, map[string]string{"tier": tier}), 200, "")
}

// count returns the number of records the tenant has in collection.
func (e *env) count(token, collection string) int {
	e.t.Helper()
	r := e.req("GET", "/v1/collections", token, nil)
	want(e.t, r, 200, "")
	var out struct {
		Items []struct {
			Name    string
			Records int
		}
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatal(err)
	}
	for _, c := range out.Items {
		if c.Name == collection {
			return c.Records
		}
	}
	return 0
}

var modes = []string{"pooled", "database"}
