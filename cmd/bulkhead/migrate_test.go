package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
)

// writeMigrations writes files (name → SQL) into a new directory.
func writeMigrations(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, sql := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sql), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestMigrateRefusesBadCommandLines(t *testing.T) {
	good := writeMigrations(t, map[string]string{"0001_a.sql": "select 1"})
	gap := writeMigrations(t, map[string]string{"0001_a.sql": "select 1", "0003_c.sql": "select 1"})
	pg := "postgres://app@127.0.0.1:1/none"
	t.Run("without --migrations it is a usage error", func(t *testing.T) {
		mustFail(t, runCLI(t, nil, "migrate", "status", "--postgres", pg), 2, "--migrations DIR is required")
	})
	t.Run("without --postgres it is a usage error", func(t *testing.T) {
		mustFail(t, runCLI(t, nil, "migrate", "up", "--migrations", good), 2, "--postgres URL is required")
	})
	t.Run("a bad --shard is a usage error", func(t *testing.T) {
		mustFail(t, runCLI(t, nil, "migrate", "up", "--migrations", good, "--postgres", pg, "--shard", "eu"), 2, "NAME=URL")
	})
	t.Run("--concurrency 0 is a usage error", func(t *testing.T) {
		mustFail(t, runCLI(t, nil, "migrate", "up", "--migrations", good, "--postgres", pg, "--concurrency", "0"), 2,
			"--concurrency must be at least 1")
	})
	t.Run("a gap in the migrations is refused before connecting", func(t *testing.T) {
		mustFail(t, runCLI(t, nil, "migrate", "status", "--migrations", gap, "--postgres", pg), 1,
			"expected version 2, found 3")
	})
	t.Run("the flags come from the environment too", func(t *testing.T) {
		mustFail(t, runCLI(t, map[string]string{"BULKHEAD_MIGRATIONS": gap, "BULKHEAD_POSTGRES": pg}, "migrate", "up"), 1,
			"expected version 2, found 3")
	})
}

// migrateFleet provisions tenants in every mode on a fresh database (the
// way serve would) and returns the flags that point migrate at it.
func migrateFleet(t *testing.T) (pgtest.Env, []string) {
	t.Helper()
	env := pgtest.New(t)
	ctx := context.Background()
	b, err := postgres.Open(ctx, postgres.Shard{Name: "main", URL: env.ServeURL, AdminURL: env.AdminURL},
		postgres.Options{DatabasePrefix: env.Prefix, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.OpenPostgres(ctx, b.OperatorPool(), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := fleet.New(fleet.Config{Catalog: cat, Backends: map[string]store.Backend{"main": b}})
	if err != nil {
		t.Fatal(err)
	}
	for id, mode := range map[string]string{"acme": "pooled", "globex": "schema", "initech": "database"} {
		if _, err := f.Create(ctx, fleet.Spec{ID: id, Isolation: new(mode)}); err != nil {
			t.Fatal(err)
		}
	}
	cat.Close()
	f.Close()
	return env, []string{"--postgres", env.ServeURL, "--postgres-admin", env.AdminURL,
		"--postgres-database-prefix", env.Prefix}
}

func TestMigrateStatusAndUpOnPostgres(t *testing.T) {
	env, flags := migrateFleet(t)
	dir := writeMigrations(t, map[string]string{
		"0001_invoices.sql": `CREATE TABLE invoices (tenant_id text NOT NULL DEFAULT current_setting('bulkhead.tenant'),
			id int NOT NULL, PRIMARY KEY (tenant_id, id))`,
		"0002_note.sql": `ALTER TABLE invoices ADD COLUMN note text`,
	})
	cli := func(args ...string) result {
		return runCLI(t, nil, append(append([]string{"migrate"}, args...), append(flags, "--migrations", dir)...)...)
	}

	r := cli("status")
	mustSucceed(t, r)
	for _, want := range []string{"UNIT", "main/pooled", "main/schema/globex", "main/database/initech",
		"3 units: 3 behind (latest version 2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = cli("up")
	mustSucceed(t, r)
	for _, want := range []string{"[1/3] main/pooled 0 -> 2", "[3/3] ", "3 units: 3 migrated (latest version 2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("up output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = cli("up", "--json")
	mustSucceed(t, r)
	var rep struct {
		Latest int            `json:"latest"`
		Counts map[string]int `json:"counts"`
		Units  []struct {
			Unit    string `json:"unit"`
			Tenant  string `json:"tenant"`
			Version int    `json:"version"`
			State   string `json:"state"`
		} `json:"units"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("up --json is not JSON: %v\n%s", err, r.stdout)
	}
	if rep.Latest != 2 || rep.Counts["current"] != 3 || len(rep.Units) != 3 {
		t.Fatalf("second up: %+v, want 3 units current at 2", rep)
	}

	// A migration that fails in globex's schema only: exit 1, naming it.
	admin, err := pgx.Connect(context.Background(), env.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(context.Background(), `CREATE TABLE t_globex.payments (x int)`); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "0003_payments.sql"),
		[]byte(`CREATE TABLE payments (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id))`), 0o600); err != nil {
		t.Fatal(err)
	}
	r = cli("up", "--concurrency", "1")
	mustFail(t, r, 1, "tenant globex", "already exists")
	for _, want := range []string{"main/schema/globex", "failed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("failed up output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = cli("status")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "main/schema/globex") || !strings.Contains(r.stdout, "1 behind") {
		t.Errorf("status after the failure:\n%s", r.stdout)
	}
}
