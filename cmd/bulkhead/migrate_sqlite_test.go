package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/catalog"
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
	cat, err := catalog.Open(filepath.Join(dir, sqliteCatalogFile), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	b, err := sqlite.Open(dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.NewRouter(store.Config{Placements: cat, Backends: map[string]store.Backend{server.LocalShard: b},
		CursorKey: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for id, mode := range map[string]store.Mode{"acme": store.Pooled, "globex": store.Database, "initech": store.Database} {
		if _, err := cat.CreateTenant(ctx, catalog.Tenant{ID: tenant.MustParse(id),
			Placement: store.Placement{Mode: mode, Shard: server.LocalShard}}, r.Provision); err != nil {
			t.Fatal(err)
		}
	}
	return dir
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
		t.Fatalf("status after up: %+v, want 2 units current at 2 (versions from the catalog)", rep)
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
