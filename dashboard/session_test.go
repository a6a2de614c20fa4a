package dashboard_test

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/dashboard"
	"github.com/bulkhead-dev/bulkhead/server"
)

var apiPaths = []string{"/dashboard/api/fleet", "/dashboard/api/top", "/dashboard/api/audit", "/dashboard/api/tenants/acme"}

func TestAPIWithoutALiveSessionIs401(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.tenant("acme", "Acme")
	forged := &http.Cookie{Name: dashboard.CookieName, Value: strings.Repeat("A", 43)}
	for _, p := range apiPaths {
		for name, c := range map[string]*http.Cookie{"no cookie": nil, "a forged cookie": forged} {
			r := e.get(p, c)
			if r.status != 401 || r.code() != "unauthenticated" || r.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s with %s: %d %q %s, want a 401 unauthenticated problem", p, name, r.status, r.code(), r.body)
			}
		}
		// The operator token itself opens no dashboard API: only a session does.
		if r := e.do("GET", p, nil, "Authorization", "Bearer "+e.op); r.status != 401 {
			t.Errorf("%s with the bearer token: %d, want 401", p, r.status)
		}
	}
	if r := e.get("/dashboard/", nil); r.status != 200 || !strings.Contains(string(r.body), `action="/dashboard/signin"`) {
		t.Fatalf("the page without a session is not the sign-in form: %d\n%s", r.status, r.body)
	}
}

func TestSignInSetsAStrictHttpOnlyCookie(t *testing.T) {
	e := newEnv(t, server.Options{})
	e.tenant("acme", "Acme")
	c := e.mustSignIn()
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/dashboard" || c.Secure {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/dashboard, not Secure on plain http", c)
	}
	if len(c.Value) != 43 { // 256 bits, base64url
		t.Fatalf("cookie value %d characters, want 43 (256 random bits)", len(c.Value))
	}
	if strings.Contains(c.Value, e.op) || strings.Contains(e.op, c.Value) {
		t.Fatal("the cookie holds the operator token")
	}
	for _, p := range apiPaths {
		if r := e.get(p, c); r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s with the session: %d, Cache-Control %q: %s", p, r.status, r.header.Get("Cache-Control"), r.body)
		}
	}

	t.Run("over TLS the cookie is Secure", func(t *testing.T) {
		e := newEnvIn(t, t.TempDir(), server.Options{}, true)
		if c := e.mustSignIn(); !c.Secure {
			t.Fatalf("cookie over TLS %+v is not Secure", c)
		}
	})
	t.Run("behind a TLS proxy the option makes it Secure", func(t *testing.T) {
		e := newEnv(t, server.Options{DashboardSecureCookie: true})
		if c := e.mustSignIn(); !c.Secure {
			t.Fatalf("cookie %+v is not Secure with DashboardSecureCookie", c)
		}
	})
}

func TestWrongTokensAreRefusedThrottledAndAudited(t *testing.T) {
	e := newEnv(t, server.Options{})
	for i, tok := range []string{"", "bko_wrong", e.op + "x", e.op[:len(e.op)-1], strings.Repeat("x", 5000)} {
		r, c := e.signIn(tok)
		if r.status != 401 || c != nil {
			t.Fatalf("token #%d: status %d, cookie %v; want 401 and no cookie", i, r.status, c)
		}
		if strings.Contains(string(r.body), e.op) {
			t.Fatal("the refusal page holds the operator token")
		}
	}
	// Past the limit even the right token waits: a guesser learns nothing.
	r, c := e.signIn(e.op)
	if r.status != 429 || c != nil || r.header.Get("Retry-After") == "" {
		t.Fatalf("sign-in after 5 failures: %d (Retry-After %q), cookie %v; want 429", r.status, r.header.Get("Retry-After"), c)
	}
	e.clock.Add(dashboard.DefaultFailureWindow)
	e.mustSignIn()

	var page struct {
		Items []struct{ Principal, Action, Decision string }
	}
	if err := json.Unmarshal(e.admin("GET", "/v1/admin/audit?limit=1000", nil, 200).body, &page); err != nil {
		t.Fatal(err)
	}
	denied, allowed := 0, 0
	for _, it := range page.Items {
		if it.Action == dashboard.SignInAction {
			switch it.Decision {
			case "deny:unauthenticated":
				denied++
			case "allow":
				allowed++
			}
		}
	}
	if denied < 4 || allowed != 1 {
		t.Fatalf("audit log: %d refused and %d allowed sign-ins, want at least 4 and 1: %+v", denied, allowed, page.Items)
	}
}

func TestCrossOriginSignInAndSignOutAreRefused(t *testing.T) {
	e := newEnv(t, server.Options{})
	form := "token=" + e.op
	post := func(path string, hdr ...string) resp {
		return e.do("POST", path, strings.NewReader(form), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, hdr...)...)
	}
	for name, hdr := range map[string][]string{
		"another origin":          {"Origin", "https://evil.example"},
		"a cross-site fetch":      {"Origin", e.origin(), "Sec-Fetch-Site", "cross-site"},
		"a same-site fetch":       {"Sec-Fetch-Site", "same-site"},
		"an opaque origin":        {"Origin", "null"},
		"an opaque cross site":    {"Origin", "null", "Sec-Fetch-Site", "cross-site"},
		"neither Origin nor site": nil,
	} {
		if r := post("/dashboard/signin", hdr...); r.status != 403 || r.header.Get("Set-Cookie") != "" {
			t.Errorf("sign-in from %s: %d, Set-Cookie %q; want 403 and no cookie", name, r.status, r.header.Get("Set-Cookie"))
		}
	}
	c := e.mustSignIn()
	csrf := e.csrf(c)
	wrong := csrf[:42] + "A"
	if wrong == csrf {
		wrong = csrf[:42] + "B"
	}
	cookie := c.Name + "=" + c.Value
	for name, hdr := range map[string][]string{
		"no CSRF token":    {"Cookie", cookie, "Origin", e.origin()},
		"a wrong token":    {"Cookie", cookie, "Origin", e.origin(), dashboard.CSRFHeader, wrong},
		"another origin":   {"Cookie", cookie, "Origin", "https://evil.example", dashboard.CSRFHeader, csrf},
		"cross-site fetch": {"Cookie", cookie, "Sec-Fetch-Site", "cross-site", dashboard.CSRFHeader, csrf},
	} {
		if r := e.do("POST", "/dashboard/signout", nil, hdr...); r.status != 403 {
			t.Errorf("sign-out with %s: %d, want 403: %s", name, r.status, r.body)
		}
	}
	if r := e.get("/dashboard/api/fleet", c); r.status != 200 {
		t.Fatalf("a refused sign-out ended the session: %d", r.status)
	}
	r := e.do("POST", "/dashboard/signout", nil, "Cookie", cookie, "Origin", e.origin(), dashboard.CSRFHeader, csrf)
	if r.status != 204 || !strings.Contains(r.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("sign-out: %d, Set-Cookie %q; want 204 deleting the cookie", r.status, r.header.Get("Set-Cookie"))
	}
	if r := e.get("/dashboard/api/fleet", c); r.status != 401 {
		t.Fatalf("the cookie still works after sign-out: %d", r.status)
	}
}

func TestSessionsExpire(t *testing.T) {
	e := newEnv(t, server.Options{})
	c := e.mustSignIn()
	e.clock.Add(dashboard.DefaultIdleTimeout - time.Second)
	if r := e.get("/dashboard/api/top", c); r.status != 200 {
		t.Fatalf("a session used within its idle timeout: %d", r.status)
	}
	e.clock.Add(dashboard.DefaultIdleTimeout)
	if r := e.get("/dashboard/api/top", c); r.status != 401 {
		t.Fatalf("an idle session: %d, want 401", r.status)
	}
	// A busy session still ends at its absolute expiry.
	c = e.mustSignIn()
	for elapsed := time.Duration(0); elapsed < dashboard.DefaultMaxAge; elapsed += dashboard.DefaultIdleTimeout / 2 {
		if r := e.get("/dashboard/api/top", c); r.status != 200 {
			t.Fatalf("a busy session ended after %s: %d", elapsed, r.status)
		}
		e.clock.Add(dashboard.DefaultIdleTimeout / 2)
	}
	if r := e.get("/dashboard/api/top", c); r.status != 401 {
		t.Fatalf("a session past its absolute expiry: %d, want 401", r.status)
	}
}

func TestRotatingTheOperatorTokenEndsSessions(t *testing.T) {
	dir := t.TempDir()
	e := newEnvIn(t, dir, server.Options{}, false)
	c := e.mustSignIn()
	e.close()
	// The operator writes another token and restarts the server.
	tok := "bko_" + strings.Repeat("r", 43)
	if err := os.WriteFile(filepath.Join(dir, "operator.token"), []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e2 := newEnvIn(t, dir, server.Options{}, false)
	if r := e2.get("/dashboard/api/fleet", c); r.status != 401 {
		t.Fatalf("a session of the old token after the restart: %d, want 401", r.status)
	}
	if r, c := e2.signIn(e.op); r.status != 401 || c != nil {
		t.Fatalf("the old token signs in: %d", r.status)
	}
	e2.mustSignIn()
}

func TestASessionMadeUnderAnotherTokenIsRefused(t *testing.T) {
	// In one process: a team whose OperatorHash changes while it runs.
	cat, err := catalog.Open(filepath.Join(t.TempDir(), "control.db"), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	var mu sync.Mutex
	hash := sha256.Sum256([]byte("first-token"))
	d, err := dashboard.New(dashboard.Config{Tenants: cat, OperatorHash: func() [32]byte { mu.Lock(); defer mu.Unlock(); return hash }})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(d)
	defer hs.Close()
	req, _ := http.NewRequest("POST", hs.URL+"/dashboard/signin", strings.NewReader("token=first-token"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", hs.URL)
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 303 || len(res.Cookies()) != 1 {
		t.Fatalf("sign-in: %d %v", res.StatusCode, res.Cookies())
	}
	get := func() int {
		req, _ := http.NewRequest("GET", hs.URL+"/dashboard/api/fleet", nil)
		req.AddCookie(res.Cookies()[0])
		r, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	if st := get(); st != 200 {
		t.Fatalf("fleet with the session: %d", st)
	}
	mu.Lock()
	hash = sha256.Sum256([]byte("second-token"))
	mu.Unlock()
	if st := get(); st != 401 {
		t.Fatalf("fleet after the token changed: %d, want 401", st)
	}
	if n := d.Sessions(); n != 0 {
		t.Fatalf("%d sessions kept after the token changed", n)
	}
}
