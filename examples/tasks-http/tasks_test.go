package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/bulkhead-dev/bulkhead/identity"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

// idp is an identity provider for the tests: an Ed25519 key whose public
// half an httptest server on loopback publishes as a JWKS, and tokens
// signed with it by jwx.
type idp struct {
	srv *httptest.Server
	key jwk.Key
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	_, raw, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Set(jwk.KeyIDKey, "key-1"); err != nil {
		t.Fatal(err)
	}
	pub, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	})
	p := &idp{srv: httptest.NewServer(mux), key: key}
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) issuer() string { return p.srv.URL }

// token signs a token for a user of tenant with role; edits are claim,
// value pairs that change the defaults (a nil value removes the claim).
func (p *idp) token(t *testing.T, tenantID, role string, edits ...any) string {
	t.Helper()
	claims := map[string]any{
		"iss": p.issuer(), "sub": "user-1", "aud": "tasks", "tenant": tenantID, "role": role,
		"iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(),
	}
	for i := 0; i+1 < len(edits); i += 2 {
		claims[edits[i].(string)] = edits[i+1]
		if edits[i+1] == nil {
			delete(claims, edits[i].(string))
		}
	}
	tok := jwt.New()
	for k, v := range claims {
		if err := tok.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.EdDSA(), p.key))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// world is the service on a real loopback server, with acme trusting
// idpA and bravo trusting idpB.
type world struct {
	srv        *httptest.Server
	idpA, idpB *idp
	dataDir    string
	app        *App
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{idpA: newIDP(t), idpB: newIDP(t), dataDir: t.TempDir()}
	app, err := Open(context.Background(), w.dataDir, w.directory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	w.app = app
	w.srv = httptest.NewServer(app.Handler())
	t.Cleanup(w.srv.Close)
	return w
}

func (w *world) directory() Directory {
	return Directory{
		tenant.MustParse("acme"):  {{Issuer: w.idpA.issuer(), Audience: "tasks"}},
		tenant.MustParse("bravo"): {{Issuer: w.idpB.issuer(), Audience: "tasks"}},
	}
}

// call sends a request with token as its bearer credential (none if
// empty) and extra headers as name, value pairs.
func (w *world) call(t *testing.T, method, path, token, body string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, w.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := w.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(raw)
}

// create makes a task as token's tenant and returns it.
func (w *world) create(t *testing.T, token, title string) Task {
	t.Helper()
	code, body := w.call(t, "POST", "/tasks", token, `{"title":"`+title+`"}`)
	var task Task
	if err := json.Unmarshal([]byte(body), &task); code != http.StatusCreated || err != nil || task.ID == "" {
		t.Fatalf("create %q: %d %s", title, code, body)
	}
	return task
}

func TestATenantSeesAndChangesOnlyItsOwnTasks(t *testing.T) {
	w := newWorld(t)
	acme := w.idpA.token(t, "acme", "writer")
	bravo := w.idpB.token(t, "bravo", "writer")
	secret := w.create(t, acme, "acme's secret plan")
	w.create(t, bravo, "bravo's own task")
	path := "/tasks/" + secret.ID

	code, body := w.call(t, "GET", "/tasks", bravo, "")
	if code != http.StatusOK || !strings.Contains(body, "bravo's own task") || strings.Contains(body, "acme") {
		t.Fatalf("bravo's list: %d %s", code, body)
	}
	_, missing := w.call(t, "GET", "/tasks/no-such-task", bravo, "")
	for _, c := range []struct{ method, body string }{
		{"GET", ""}, {"PATCH", `{"title":"taken over","done":true}`}, {"DELETE", ""},
	} {
		code, body := w.call(t, c.method, path, bravo, c.body)
		if code != http.StatusNotFound || body != missing {
			t.Errorf("bravo's %s of acme's task: %d %s; want the answer for a task that does not exist: %s", c.method, code, body, missing)
		}
	}
	// Nothing in the request can choose the tenant: not the act-as header
	// (for support agents only), not the body.
	if code, body := w.call(t, "GET", path, bravo, "", ingress.ActAsHeader, "acme"); code != http.StatusForbidden {
		t.Errorf("bravo's token acting as acme: %d %s", code, body)
	}
	if code, body := w.call(t, "POST", "/tasks", bravo, `{"title":"x","tenant":"acme"}`); code != http.StatusBadRequest {
		t.Errorf("a body naming a tenant: %d %s", code, body)
	}

	code, body = w.call(t, "GET", path, acme, "")
	var got Task
	if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil || got != secret {
		t.Fatalf("acme's task after bravo's attempts: %d %s; want %+v", code, body, secret)
	}
	if code, body := w.call(t, "GET", "/tasks", acme, ""); strings.Count(body, `"id"`) != 1 {
		t.Fatalf("acme's list after bravo's attempts: %d %s", code, body)
	}
	// The same calls work for the task's own tenant.
	if code, body := w.call(t, "PATCH", path, acme, `{"done":true}`); code != http.StatusOK || !strings.Contains(body, `"done":true`) {
		t.Fatalf("acme's update: %d %s", code, body)
	}
	if code, body := w.call(t, "DELETE", path, acme, ""); code != http.StatusNoContent {
		t.Fatalf("acme's delete: %d %s", code, body)
	}
	if code, _ := w.call(t, "GET", path, acme, ""); code != http.StatusNotFound {
		t.Fatalf("acme's deleted task: %d", code)
	}
}

func TestOnlyAValidTokenOfATrustedIssuerGetsIn(t *testing.T) {
	w := newWorld(t)
	stranger := newIDP(t) // trusted by no tenant
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"a valid token (the control case)", w.idpA.token(t, "acme", "reader"), http.StatusOK},
		{"no token", "", http.StatusUnauthorized},
		{"not a JWT", "not-a-token", http.StatusUnauthorized},
		{"a token from an issuer no tenant trusts", stranger.token(t, "acme", "reader"), http.StatusUnauthorized},
		{"a stranger's token claiming acme's issuer", stranger.token(t, "acme", "reader", "iss", w.idpA.issuer()), http.StatusUnauthorized},
		{"an expired token", w.idpA.token(t, "acme", "reader", "exp", time.Now().Add(-time.Minute).Unix()), http.StatusUnauthorized},
		{"a token without exp", w.idpA.token(t, "acme", "reader", "exp", nil), http.StatusUnauthorized},
		{"a token for another audience", w.idpA.token(t, "acme", "reader", "aud", "billing"), http.StatusUnauthorized},
		{"bravo's issuer naming acme", w.idpB.token(t, "acme", "admin"), http.StatusUnauthorized},
		{"acme's issuer naming bravo", w.idpA.token(t, "bravo", "admin"), http.StatusUnauthorized},
		{"a tenant not in the directory", w.idpA.token(t, "zulu", "admin"), http.StatusUnauthorized},
		{"a token without a role", w.idpA.token(t, "acme", "reader", "role", nil), http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := w.call(t, "GET", "/tasks", c.token, "")
			if code != c.want {
				t.Fatalf("status %d, want %d: %s", code, c.want, body)
			}
			if c.want == http.StatusUnauthorized && !strings.Contains(body, `"code":"unauthenticated"`) {
				t.Fatalf("body %s", body)
			}
		})
	}
	t.Run("a token altered after signing", func(t *testing.T) {
		parts := strings.Split(w.idpA.token(t, "acme", "reader"), ".")
		bravoClaims := strings.Split(w.idpB.token(t, "bravo", "reader"), ".")[1]
		if code, body := w.call(t, "GET", "/tasks", parts[0]+"."+bravoClaims+"."+parts[2], ""); code != http.StatusUnauthorized {
			t.Fatalf("%d %s", code, body)
		}
	})
}

func TestTheTokensRoleDecidesWhatItMayDo(t *testing.T) {
	w := newWorld(t)
	task := w.create(t, w.idpA.token(t, "acme", "writer"), "ship it")
	reader := w.idpA.token(t, "acme", "reader")
	if code, body := w.call(t, "GET", "/tasks/"+task.ID, reader, ""); code != http.StatusOK {
		t.Fatalf("a reader reads: %d %s", code, body)
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/tasks", `{"title":"x"}`}, {"PATCH", "/tasks/" + task.ID, `{"done":true}`}, {"DELETE", "/tasks/" + task.ID, ""},
	} {
		if code, body := w.call(t, c.method, c.path, reader, c.body); code != http.StatusForbidden {
			t.Errorf("a reader's %s %s: %d %s", c.method, c.path, code, body)
		}
	}
}

func TestTasksSurviveARestart(t *testing.T) {
	w := newWorld(t)
	acme := w.idpA.token(t, "acme", "writer")
	task := w.create(t, acme, "remember me")
	if _, err := Open(context.Background(), w.dataDir, w.directory()); !errors.Is(err, sqlite.ErrLocked) {
		t.Fatalf("a second Open of the data directory in use: %v", err)
	}
	w.srv.Close()
	if err := w.app.Close(); err != nil {
		t.Fatal(err)
	}
	app, err := Open(context.Background(), w.dataDir, w.directory()) // the migrations are applied already
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	w.srv = httptest.NewServer(app.Handler())
	defer w.srv.Close()
	code, body := w.call(t, "GET", "/tasks/"+task.ID, acme, "")
	if code != http.StatusOK || !strings.Contains(body, `"title":"remember me"`) {
		t.Fatalf("the task after a restart: %d %s", code, body)
	}
}

func TestOpenRefusesAnUnsafeIssuer(t *testing.T) {
	for name, is := range map[string]identity.Issuer{
		"HMAC":                {Issuer: "https://login.example", Audience: "tasks", Algorithms: []string{"HS256"}},
		"http off loopback":   {Issuer: "http://login.example", Audience: "tasks"},
		"no audience":         {Issuer: "https://login.example"},
		"tenant claim is sub": {Issuer: "https://login.example", Audience: "tasks", TenantClaim: "sub"},
	} {
		app, err := Open(context.Background(), t.TempDir(), Directory{tenant.MustParse("acme"): {is}})
		if !errors.Is(err, identity.ErrInvalidIssuer) {
			t.Errorf("%s: %v", name, err)
		}
		if err == nil {
			app.Close()
		}
	}
}

func TestLoadDirectory(t *testing.T) {
	path := t.TempDir() + "/tenants.json"
	if err := os.WriteFile(path, []byte(`{"acme": [{"issuer": "https://login.acme.example", "audience": "tasks"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := LoadDirectory(path)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := d.Issuers(context.Background(), tenant.MustParse("acme"))
	want := identity.Issuer{Issuer: "https://login.acme.example", Audience: "tasks"}.WithDefaults()
	if len(got) != 1 || got[0].Issuer != want.Issuer || got[0].JWKSURL != want.JWKSURL || got[0].TenantClaim != "tenant" {
		t.Fatalf("issuers %+v", got)
	}
	if err := os.WriteFile(path, []byte(`{"Admin": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDirectory(path); err == nil {
		t.Fatal("an invalid tenant id was accepted")
	}
}

// TestTenanttestFindsNoLeakThroughTheAPI runs tenanttest's isolation check
// through the HTTP API: the probe calls as the tenant in its context, with
// a token its issuer signed for that tenant.
func TestTenanttestFindsNoLeakThroughTheAPI(t *testing.T) {
	w := newWorld(t)
	acme, bravo := tenant.MustParse("acme"), tenant.MustParse("bravo")
	tokens := map[tenant.ID]string{acme: w.idpA.token(t, "acme", "writer"), bravo: w.idpB.token(t, "bravo", "writer")}
	tokenOf := func(ctx context.Context) string {
		id, _ := tenant.FromContext(ctx)
		return tokens[id]
	}
	var written string // the id of the task Write made last
	ctx := context.Background()
	tenanttest.IsolatedBetween(t, tenant.WithID(ctx, acme), tenant.WithID(ctx, bravo), tenanttest.Probe{
		Write: func(ctx context.Context) error {
			code, body := w.call(t, "POST", "/tasks", tokenOf(ctx), `{"title":"probe"}`)
			var task Task
			if err := json.Unmarshal([]byte(body), &task); code != http.StatusCreated || err != nil {
				return fmt.Errorf("create: %d %s", code, body)
			}
			written = task.ID
			return nil
		},
		Read: func(ctx context.Context) (any, error) {
			code, body := w.call(t, "GET", "/tasks", tokenOf(ctx), "")
			return fmt.Sprint(code, " ", body), nil
		},
		Tamper: func(ctx context.Context) error {
			w.call(t, "PATCH", "/tasks/"+written, tokenOf(ctx), `{"title":"tampered","done":true}`)
			w.call(t, "DELETE", "/tasks/"+written, tokenOf(ctx), "")
			return nil
		},
	})
}

// TestReadmeCommandsRun runs the README's shell block as written, with
// binary paths and ports of the test's own.
func TestReadmeCommandsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Run it.*?```sh\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no sh block under ## Run it")
	}
	bin := t.TempDir()
	script := strings.NewReplacer("/tmp/tasks-http", filepath.Join(bin, "tasks-http"), "/tmp/devissuer", filepath.Join(bin, "devissuer"),
		"127.0.0.1:8092", freeAddr(t), "127.0.0.1:8099", freeAddr(t)).Replace(string(m[1]))
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir()) // mktemp's directory goes with the test
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's commands failed: %v\n%s", err, out)
	}
	for _, want := range []string{`{"items":[]}`, `"code":"forbidden"`, `"code":"unauthenticated"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if strings.Count(string(out), `"title":"try Bulkhead"`) != 2 {
		t.Errorf("acme should see its task once after creating it:\n%s", out)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
