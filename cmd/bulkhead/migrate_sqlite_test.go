package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// sqliteFleet makes a data directory the way serve would, with a pooled
// tenant (acme) and two database-mode tenants (globex, initech), and
// returns it.
func sqliteFleet(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	srv, err := server.Open(ctx, server.Options{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	f, closeFleet := openTestFleet(t, dir, nil)
	defer closeFleet()
	for id, mode := range map[string]string{"acme": "pooled", "globex": "database", "initech": "database"} {
		if _, err := f.Create(ctx, fleet.Spec{ID: id, Isolation: new(mode)}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// openTestFleet opens the fleet of data directory dir, as a service
// embedding Bulkhead with migrations ms would.
func openTestFleet(t *testing.T, dir string, ms []migrate.Migration) (*fleet.Fleet, func()) {
	t.Helper()
	cat, err := catalog.Open(filepath.Join(dir, sqliteCatalogFile), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := sqlite.Open(dir, sqlite.Options{})
	if err != nil {
		cat.Close()
		t.Fatal(err)
	}
	f, err := fleet.New(fleet.Config{Catalog: cat, Backends: map[string]store.Backend{server.LocalShard: b}, Migrations: ms})
	if err != nil {
		cat.Close()
		b.Close()
		t.Fatal(err)
	}
	return f, func() { f.Close(); cat.Close() }
}

// tenantVersion reads a database tenant's own schema_migrations.
func tenantVersion(t *testing.T, dir, id string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "tenants", tenant.MustParse(id).StorageName()+".db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow(`SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrateStatusAndUpOnSQLite(t *testing.T) {
	dataDir := sqliteFleet(t)
	dir := writeMigrations(t, map[string]string{
		"0001_notes.sql": `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`,
		"0002_done.sql":  `ALTER TABLE notes ADD COLUMN done INTEGER NOT NULL DEFAULT 0`,
	})
	cli := func(args ...string) result {
		return runCLI(t, nil, append(append([]string{"migrate"}, args...), "--data-dir", dataDir, "--migrations", dir)...)
	}

	r := cli("status")
	mustSucceed(t, r)
	for _, want := range []string{"UNIT", "local/database/globex", "local/database/initech", "2 units: 2 behind (latest version 2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "pooled") {
		t.Errorf("status lists a SQLite pooled unit:\n%s", r.stdout)
	}

	r = cli("up")
	mustSucceed(t, r)
	for _, want := range []string{"local/database/globex 0 -> 2", "local/database/initech 0 -> 2", "[2/2] ", "2 units: 2 migrated (latest version 2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("up output lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, id := range []string{"globex", "initech"} {
		if v := tenantVersion(t, dataDir, id); v != 2 {
			t.Errorf("%s's own version is %d, want 2", id, v)
		}
	}

	r = runCLI(t, map[string]string{"BULKHEAD_DATA_DIR": dataDir, "BULKHEAD_MIGRATIONS": dir}, "migrate", "status", "--json")
	mustSucceed(t, r)
	var rep struct {
		Latest int            `json:"latest"`
		Counts map[string]int `json:"counts"`
		Units  []struct {
			Unit    string `json:"unit"`
			Version int    `json:"version"`
		} `json:"units"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, r.stdout)
	}
	if rep.Latest != 2 || rep.Counts["current"] != 2 || len(rep.Units) != 2 {
		t.Fatalf("status after up: %+v, want 2 units current at 2 (versions from the tenants' files)", rep)
	}

	// A migration refused by the guard fails the unit, naming the tenant.
	escape := `ATTACH DATABASE '` + filepath.Join(dataDir, "pooled.db") + `' AS p`
	if err := os.WriteFile(filepath.Join(dir, "0003_escape.sql"), []byte(escape), 0o600); err != nil {
		t.Fatal(err)
	}
	r = cli("up", "--concurrency", "1")
	mustFail(t, r, 1, "tenant globex", "refused")
	if v := tenantVersion(t, dataDir, "globex"); v != 2 {
		t.Errorf("globex's version after the refused migration: %d", v)
	}
}

func TestMigrateOnSQLiteIsRefusedWhileAServerOwnsTheDataDir(t *testing.T) {
	dataDir := sqliteFleet(t)
	dir := writeMigrations(t, map[string]string{"0001_notes.sql": `CREATE TABLE notes (id INTEGER PRIMARY KEY)`})
	srv, err := server.Open(context.Background(), server.Options{DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"status", "up"} {
		r := runCLI(t, nil, "migrate", sub, "--data-dir", dataDir, "--migrations", dir)
		mustFail(t, r, 1, "is in use", "stop the server")
	}
	if v := tenantVersion(t, dataDir, "globex"); v != 0 {
		t.Fatalf("globex migrated while the server ran: version %d", v)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, runCLI(t, nil, "migrate", "up", "--data-dir", dataDir, "--migrations", dir))
	if v := tenantVersion(t, dataDir, "globex"); v != 1 {
		t.Fatalf("globex's version after the server stopped: %d", v)
	}
	// and a server starts again once migrate is done
	srv, err = server.Open(context.Background(), server.Options{DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("server after migrate: %v", err)
	}
	srv.Close()
}

func TestMigrateOnSQLiteNeedsAServersDataDir(t *testing.T) {
	dir := writeMigrations(t, map[string]string{"0001_a.sql": "select 1"})
	empty := t.TempDir()
	mustFail(t, runCLI(t, nil, "migrate", "status", "--data-dir", empty, "--migrations", dir), 1, "no catalog at")
}

// TestMigrateStatusAgreesWithTheFleetAndTheServer checks that there is one
// record of a tenant's version: a tenant a service created with its
// migrations is current for migrate status without anyone recording it,
// and a tenant the server deletes and creates again starts over.
func TestMigrateStatusAgreesWithTheFleetAndTheServer(t *testing.T) {
	ctx := context.Background()
	dataDir := sqliteFleet(t)
	files := map[string]string{"0001_notes.sql": `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`}
	dir := writeMigrations(t, files)
	ms, err := migrate.Load(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	f, closeFleet := openTestFleet(t, dataDir, ms)
	if _, err := f.Create(ctx, fleet.Spec{ID: "hooli", Isolation: new("database")}); err != nil {
		t.Fatal(err)
	}
	closeFleet()
	status := func() string {
		t.Helper()
		r := runCLI(t, nil, "migrate", "status", "--data-dir", dataDir, "--migrations", dir)
		mustSucceed(t, r)
		return r.stdout
	}
	out := status()
	for _, want := range []string{"local/database/hooli", "3 units: 1 current, 2 behind"} {
		if !strings.Contains(out, want) {
			t.Errorf("status after the service created hooli lacks %q:\n%s", want, out)
		}
	}

	// The server deletes hooli and creates it again: a new tenant, version 0.
	srv, err := server.Open(ctx, server.Options{DataDir: dataDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(srv.OperatorTokenPath())
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	for _, req := range []struct{ method, path, body string }{
		{"DELETE", "/v1/admin/tenants/hooli", ""},
		{"POST", "/v1/admin/tenants", `{"id":"hooli","isolation":"database"}`},
	} {
		rec := httptest.NewRecorder()
		hr := httptest.NewRequest(req.method, req.path, strings.NewReader(req.body))
		hr.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		srv.Handler().ServeHTTP(rec, hr)
		if rec.Code >= 300 {
			srv.Close()
			t.Fatalf("%s %s: %d %s", req.method, req.path, rec.Code, rec.Body)
		}
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if out := status(); !strings.Contains(out, "3 units: 3 behind") {
		t.Errorf("status after the server re-created hooli:\n%s", out)
	}
	if v := tenantVersion(t, dataDir, "hooli"); v != 0 {
		t.Errorf("the re-created hooli's own version is %d, want 0", v)
	}
}
