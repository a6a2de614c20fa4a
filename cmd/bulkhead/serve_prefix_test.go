package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TestServeDatabasePrefixReachesTheServer runs serve the way an operator
// does, with --postgres-database-prefix (and then with its variable
// BULKHEAD_POSTGRES_DATABASE_PREFIX), provisions database-mode tenants over
// HTTP, and checks that their databases carry the prefix and that migrate,
// given the same prefix, finds and migrates them.
func TestServeDatabasePrefixReachesTheServer(t *testing.T) {
	pg := pgtest.New(t)
	ctx := context.Background()
	dir := t.TempDir()
	// Random tenant ids: without the prefix the databases would be named
	// t_<id> on the shared server, where fixed names could collide.
	var b [4]byte
	_, _ = rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	byFlag, byEnv := "flag-"+suffix, "env-"+suffix
	pgArgs := []string{"--postgres", pg.ServeURL, "--postgres-admin", pg.AdminURL}

	provision := func(env map[string]string, id string, extra ...string) {
		t.Helper()
		url, logs, stop := startServeEnv(t, env, dir, append(append([]string{}, pgArgs...), extra...)...)
		mustSucceed(t, runCLI(t, map[string]string{"BULKHEAD_ADDR": url, "BULKHEAD_DATA_DIR": dir},
			"tenant", "create", id, "--isolation", "database"))
		if code := stop(); code != 0 {
			t.Fatalf("serve exited %d; log:\n%s", code, logs.String())
		}
	}
	provision(nil, byFlag, "--postgres-database-prefix", pg.Prefix)
	provision(map[string]string{"BULKHEAD_POSTGRES_DATABASE_PREFIX": pg.Prefix}, byEnv)

	conn, err := pgx.Connect(ctx, pg.SuperURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, id := range []string{byFlag, byEnv} {
		storage := tenant.MustParse(id).StorageName()
		var names []string
		rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname IN ($1, $2) ORDER BY datname`,
			pg.Prefix+storage, storage)
		if err != nil {
			t.Fatal(err)
		}
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != 1 || names[0] != pg.Prefix+storage {
			t.Errorf("tenant %s: databases %q in pg_database, want only %q", id, names, pg.Prefix+storage)
		}
	}

	migrations := writeMigrations(t, map[string]string{
		"0001_notes.sql": `CREATE TABLE notes (id int PRIMARY KEY, body text)`,
	})
	migrateCLI := func(env map[string]string, args ...string) result {
		t.Helper()
		return runCLI(t, env, append(append([]string{"migrate"}, args...),
			append(append([]string{}, pgArgs...), "--migrations", migrations)...)...)
	}
	withFlag := []string{"--postgres-database-prefix", pg.Prefix}
	withEnv := map[string]string{"BULKHEAD_POSTGRES_DATABASE_PREFIX": pg.Prefix}

	r := migrateCLI(nil, append([]string{"status"}, withFlag...)...)
	mustSucceed(t, r)
	for _, id := range []string{byFlag, byEnv} {
		if !strings.Contains(r.stdout, "main/database/"+id) {
			t.Errorf("migrate status does not list %s:\n%s", id, r.stdout)
		}
	}
	// up opens each tenant's database by its prefixed name: it fails if
	// serve created them under another one.
	r = migrateCLI(withEnv, "up")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "3 units: 3 migrated (latest version 1") {
		t.Errorf("migrate up did not migrate the pooled unit and both tenants:\n%s", r.stdout)
	}
	r = migrateCLI(nil, append([]string{"status"}, withFlag...)...)
	mustSucceed(t, r)
	for _, row := range tableRows(r.stdout) {
		if len(row) == 4 && strings.HasPrefix(row[0], "main/database/") && row[3] != "current" {
			t.Errorf("after up, %s is %s, want current:\n%s", row[0], row[3], r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "3 units: 3 current") {
		t.Errorf("after up, status is not all current:\n%s", r.stdout)
	}
	for _, id := range []string{byFlag, byEnv} {
		var n int
		db := pg.Prefix + tenant.MustParse(id).StorageName()
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, db).Scan(&n); err != nil || n != 1 {
			t.Errorf("database %s: %d, %v", db, n, err)
		}
	}
}

// TestDatabasePrefixIsCheckedAtStartup: an invalid prefix, or one without
// PostgreSQL, is a usage error naming the flag before serve listens or
// migrate connects, from the flag and from the variable alike.
func TestDatabasePrefixIsCheckedAtStartup(t *testing.T) {
	pg := "postgres://app@127.0.0.1:1/none" // nothing listens: a connection attempt would fail differently
	migrations := writeMigrations(t, map[string]string{"0001_a.sql": "select 1"})
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"upper case and punctuation", nil, []string{"--postgres-database-prefix", "Bad-Prefix"}, "a-z, 0-9 and '_'"},
		{"too long", nil, []string{"--postgres-database-prefix", strings.Repeat("p", 21)}, "at most 20"},
		{"from the environment", map[string]string{"BULKHEAD_POSTGRES_DATABASE_PREFIX": "bh;drop"}, nil, "a-z, 0-9 and '_'"},
	}
	for _, tc := range cases {
		t.Run("serve refuses a prefix: "+tc.name, func(t *testing.T) {
			r := runServeBriefly(t, tc.env, append([]string{"--postgres", pg, "--postgres-admin", pg}, tc.args...)...)
			mustFail(t, r, 2, "--postgres-database-prefix", tc.want)
			if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "connect") {
				t.Errorf("not a startup check:\n%s", r.stderr)
			}
		})
		for _, sub := range []string{"status", "up"} {
			t.Run("migrate "+sub+" refuses a prefix: "+tc.name, func(t *testing.T) {
				r := runCLI(t, tc.env, append([]string{"migrate", sub, "--migrations", migrations,
					"--postgres", pg, "--postgres-admin", pg}, tc.args...)...)
				mustFail(t, r, 2, "--postgres-database-prefix", tc.want)
			})
		}
	}
	t.Run("serve refuses a prefix without --postgres", func(t *testing.T) {
		r := runServeBriefly(t, nil, "--postgres-database-prefix", "bh_")
		mustFail(t, r, 2, "--postgres-database-prefix", "--postgres")
	})
	t.Run("a valid prefix passes the check", func(t *testing.T) {
		f := postgresFlags{url: pg, dbPrefix: "bh_prod_1"}
		if _, err := f.parse(); err != nil {
			t.Fatalf("parse: %v", err)
		}
	})
}

// runServeBriefly runs serve with args on a free loopback port and a new
// data directory, stopping it after a few seconds if it starts after all
// (it then exits 0, which the callers do not expect).
func runServeBriefly(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"serve", "--addr", closedAddr(t), "--data-dir", t.TempDir()}, args...),
		&out, &errb, mapEnv(env))
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}
