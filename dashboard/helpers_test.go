package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/telemetry"
)

// clock is a settable clock for the server, its sessions and its health
// monitor.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a real Bulkhead server on a loopback httptest server, over a data
// directory in t.TempDir().
type env struct {
	t     testing.TB
	dir   string
	srv   *server.Server
	http  *httptest.Server
	op    string // the operator token
	clock *clock
	logs  *bytes.Buffer
	once  sync.Once
}

func newEnv(t testing.TB, opts server.Options) *env {
	t.Helper()
	return newEnvIn(t, t.TempDir(), opts, false)
}

func newEnvIn(t testing.TB, dir string, opts server.Options, tls bool) *env {
	t.Helper()
	e := &env{t: t, dir: dir, clock: &clock{now: time.Now()}, logs: &bytes.Buffer{}}
	opts.DataDir = dir
	opts.DisableRateLimit = true
	opts.UsageSweepInterval = -1
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	opts.Logger = telemetry.NewLogger(io.Discard, slog.LevelInfo)
	s, err := server.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open server: %v", err)
	}
	e.srv = s
	if e.op, err = server.ReadOperatorToken(dir); err != nil {
		t.Fatal(err)
	}
	if tls {
		e.http = httptest.NewTLSServer(s.Handler())
	} else {
		e.http = httptest.NewServer(s.Handler())
	}
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	e.once.Do(func() {
		e.http.Close()
		if err := e.srv.Close(); err != nil {
			e.t.Errorf("close server: %v", err)
		}
	})
}

// resp is a response read whole.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) code() string {
	var p struct{ Code string }
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

// do sends one request with the header pairs in hdr, never following a
// redirect.
func (e *env) do(method, path string, body io.Reader, hdr ...string) resp {
	e.t.Helper()
	r, err := http.NewRequest(method, e.http.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	c := *e.http.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Do(r)
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

// admin calls the control plane with the operator token; body is JSON.
func (e *env) admin(method, path string, body any, wantStatus int) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	r := e.do(method, path, rd, "Authorization", "Bearer "+e.op)
	if r.status != wantStatus {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, wantStatus, r.body)
	}
	return r
}

// tenant creates a tenant and returns an admin key's token.
func (e *env) tenant(id, name string) string {
	e.t.Helper()
	e.admin("POST", "/v1/admin/tenants", map[string]string{"id": id, "name": name, "isolation": "pooled"}, 201)
	r := e.admin("POST", "/v1/admin/tenants/"+id+"/keys", map[string]string{"role": "admin", "name": "k"}, 201)
	var k struct{ Token string }
	if err := json.Unmarshal(r.body, &k); err != nil || k.Token == "" {
		e.t.Fatalf("key of %s: %v %s", id, err, r.body)
	}
	return k.Token
}

// origin is the server's own origin, as a browser would send it.
func (e *env) origin() string { return e.http.URL }

// signIn posts the operator token through the form as the browser does
// and returns the session cookie.
func (e *env) signIn(token string) (resp, *http.Cookie) {
	e.t.Helper()
	form := url.Values{"token": {token}}.Encode()
	r := e.do("POST", "/dashboard/signin", strings.NewReader(form),
		"Content-Type", "application/x-www-form-urlencoded", "Origin", e.origin(), "Sec-Fetch-Site", "same-origin")
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "bulkhead_dashboard" {
			return r, c
		}
	}
	return r, nil
}

// mustSignIn signs in with the right token.
func (e *env) mustSignIn() *http.Cookie {
	e.t.Helper()
	r, c := e.signIn(e.op)
	if r.status != http.StatusSeeOther || c == nil {
		e.t.Fatalf("sign-in: status %d, cookie %v: %s", r.status, c, r.body)
	}
	return c
}

// get reads a dashboard path with the session cookie c (nil: none).
func (e *env) get(path string, c *http.Cookie) resp {
	e.t.Helper()
	var hdr []string
	if c != nil {
		hdr = []string{"Cookie", c.Name + "=" + c.Value}
	}
	return e.do("GET", path, nil, hdr...)
}

// csrf reads the page's CSRF token for the session c.
func (e *env) csrf(c *http.Cookie) string {
	e.t.Helper()
	page := string(e.get("/dashboard/", c).body)
	_, rest, ok := strings.Cut(page, `name="csrf-token" content="`)
	tok, _, ok2 := strings.Cut(rest, `"`)
	if !ok || !ok2 || tok == "" {
		e.t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return tok
}
