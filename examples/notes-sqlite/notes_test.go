package main

import (
	"context"
	"database/sql"
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

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

func openApp(t *testing.T) (*App, string) {
	t.Helper()
	dir := t.TempDir()
	app, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	return app, dir
}

func call(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
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

// tenants creates acme and bravo with a note each and returns their tokens.
func tenants(t *testing.T, app *App, srv *httptest.Server) (acme, bravo string) {
	t.Helper()
	tokens := map[string]string{}
	for _, id := range []string{"acme", "bravo"} {
		tok, err := app.CreateTenant(context.Background(), tenant.MustParse(id))
		if err != nil {
			t.Fatal(err)
		}
		tokens[id] = tok
		if code, body := call(t, srv, "POST", "/notes", tok, fmt.Sprintf(`{"title":"%s-secret","body":"only %s"}`, id, id)); code != http.StatusCreated {
			t.Fatalf("%s: create = %d %s", id, code, body)
		}
	}
	return tokens["acme"], tokens["bravo"]
}

// TestTenantsSeeAndChangeOnlyTheirOwnNotes runs tenanttest's isolation
// check through the service's Handler (gate, policy, handlers) over
// tenanttest's store, with two new tenants in database mode (the notes
// table is in each tenant's own file): B must not see A's note, listed or
// by its title, nor change what A sees by naming A in a body or by writing
// the same note.
func TestTenantsSeeAndChangeOnlyTheirOwnNotes(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{Migrations: tenanttest.Migrations(t, migrationsFS, "migrations")})
	// The Env's tenants are writers at the gate; a token is a tenant's id.
	gate, err := ingress.New(ingress.Config{Authenticator: env.Authenticator("writer")})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer((&App{router: env.Router, gate: gate}).Handler())
	defer api.Close()
	var victim string // A: Write runs as A before B tampers
	tenanttest.Isolated(t, env, tenanttest.Probe{
		Write: func(ctx context.Context) error {
			id, _ := tenant.FromContext(ctx)
			victim = id.String()
			if code, body := call(t, api, "POST", "/notes", tenanttest.Token(ctx), `{"title":"secret","body":"only me"}`); code != http.StatusCreated {
				return fmt.Errorf("create = %d %s", code, body)
			}
			return nil
		},
		Read: func(ctx context.Context) (any, error) {
			var seen [2]string // all notes, and those titled "secret"
			for i, path := range []string{"/notes", "/notes?title=secret"} {
				code, body := call(t, api, "GET", path, tenanttest.Token(ctx), "")
				if code != http.StatusOK {
					return nil, fmt.Errorf("GET %s = %d %s", path, code, body)
				}
				seen[i] = body
			}
			return seen, nil
		},
		Tamper: func(ctx context.Context) error {
			code, body := call(t, api, "POST", "/notes", tenanttest.Token(ctx), fmt.Sprintf(`{"title":"x","tenant":%q}`, victim))
			return fmt.Errorf("a body naming A: %d %s", code, body)
		},
	}, store.Database)
}

// TestTheServiceServesTheKeysTenant runs the service as it is wired:
// tenants created through the fleet, API keys checked by the ingress gate,
// the catalog's tenant states.
func TestTheServiceServesTheKeysTenant(t *testing.T) {
	app, _ := openApp(t)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	acme, bravo := tenants(t, app, srv)

	for id, tok := range map[string]string{"acme": acme, "bravo": bravo} {
		if code, body := call(t, srv, "GET", "/notes", tok, ""); code != http.StatusOK || strings.Count(body, `"id"`) != 1 || !strings.Contains(body, id+"-secret") {
			t.Fatalf("%s's key lists: %d %s; want its tenant's one note", id, code, body)
		}
	}
	if code, body := call(t, srv, "POST", "/notes", bravo, `{"title":"x","tenant":"acme"}`); code != http.StatusBadRequest {
		t.Fatalf("a body naming a tenant: %d %s", code, body)
	}
	for name, tok := range map[string]string{"no key": "", "a bad key": "bko_not-a-key"} {
		if code, body := call(t, srv, "GET", "/notes", tok, ""); code != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthenticated"`) {
			t.Fatalf("%s: %d %s, want 401 unauthenticated", name, code, body)
		}
	}
	if _, err := app.fleet.Suspend(context.Background(), tenant.MustParse("bravo")); err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, srv, "GET", "/notes", bravo, ""); code != http.StatusForbidden || !strings.Contains(body, `"code":"tenant_suspended"`) {
		t.Fatalf("a suspended tenant's key: %d %s, want 403 tenant_suspended", code, body)
	}
}

// TestInjectedAttachIsRefused serves a sloppy handler, written on the
// example's own SQL path (behind the gate, sqlite.Tx) but building its SQL
// by concatenation, and injects an ATTACH of bravo's file through it.
func TestInjectedAttachIsRefused(t *testing.T) {
	app, dir := openApp(t)
	errs := make(chan error, 1)
	sloppy := app.gate.Data("record.write", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		title := r.URL.Query().Get("title")
		err := sqlite.Tx(r.Context(), app.router, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(r.Context(), `UPDATE notes SET title = '`+title+`' WHERE id = 1`) // injectable
			return err
		})
		errs <- err
		if err != nil {
			http.Error(w, "could not rename", http.StatusInternalServerError)
		}
	}))
	mux := http.NewServeMux()
	mux.Handle("/", app.Handler())
	mux.Handle("/rename", sloppy)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	acme, bravo := tenants(t, app, srv)

	if code, body := call(t, srv, "POST", "/rename?title=renamed", acme, ""); code != http.StatusOK {
		t.Fatalf("the sloppy handler does not work at all: %d %s (%v)", code, body, <-errs)
	}
	<-errs
	bravoFile := filepath.Join(dir, "tenants", tenant.MustParse("bravo").StorageName()+".db")
	for _, payload := range []string{
		`x'; ATTACH DATABASE '` + bravoFile + `' AS b; DELETE FROM b.notes; --`,
		`x'; ATTACH DATABASE '` + filepath.Join(dir, "pooled.db") + `' AS p; --`,
		`x'; COMMIT; VACUUM INTO '` + filepath.Join(dir, "stolen.db") + `'; --`,
	} {
		code, _ := call(t, srv, "POST", "/rename?title="+urlQuery(payload), acme, "")
		if lastErr := <-errs; code != http.StatusInternalServerError || !errors.Is(lastErr, sqlite.ErrRefused) {
			t.Fatalf("injected %q: status %d, err %v; want it refused", payload, code, lastErr)
		}
	}
	if code, body := call(t, srv, "GET", "/notes", bravo, ""); !strings.Contains(body, "bravo-secret") {
		t.Fatalf("bravo's notes after the injection: %d %s", code, body)
	}
	if code, body := call(t, srv, "GET", "/notes", acme, ""); !strings.Contains(body, `"renamed"`) {
		t.Fatalf("acme's notes after the refused injections (rolled back): %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "stolen.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("VACUUM INTO wrote a file: %v", err)
	}
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20", "'", "%27", ";", "%3B", "&", "%26", "#", "%23", "+", "%2B").Replace(s)
}

func TestTheDataDirectoryHasOneOwnerAndSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	app, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.CreateTenant(ctx, tenant.MustParse("acme")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir); !errors.Is(err, sqlite.ErrLocked) {
		t.Fatalf("a second Open while the first runs: %v", err)
	}
	var out strings.Builder
	if err := run(ctx, []string{"-data-dir", dir, "tenant", "bravo"}, &out); !errors.Is(err, sqlite.ErrLocked) {
		t.Fatalf("the tenant command while the service runs: %v", err)
	}
	app.Close()
	if err := run(ctx, []string{"-data-dir", dir, "tenant", "bravo"}, &out); err != nil || !strings.HasPrefix(out.String(), "bk") {
		t.Fatalf("the tenant command: %q %v", out.String(), err)
	}
}

// TestReadmeCommandsRun runs the README's shell block as written, with a
// binary path and port of the test's own.
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	script := strings.NewReplacer("/tmp/notes-sqlite", filepath.Join(t.TempDir(), "notes-sqlite"),
		"127.0.0.1:8091", addr).Replace(string(m[1]))
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir()) // mktemp's data directory goes with the test
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's commands failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"title":"hello","body":"from acme"`, `{"items":[]}`,
		"local/database/acme", "2 units: 2 current (latest version 2"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(string(out), `"title":"hello"`) != 2 {
		t.Errorf("acme should see its note once after creating it:\n%s", out)
	}
}
