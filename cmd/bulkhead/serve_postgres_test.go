package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
)

func TestServeRefusesBadPostgresFlags(t *testing.T) {
	pg := "postgres://app@127.0.0.1:1/none"
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"--postgres without --postgres-admin", nil, []string{"--postgres", pg}, "--postgres-admin"},
		{"--shard without --postgres", nil, []string{"--shard", "eu=" + pg}, "need --postgres"},
		{"--shard without its admin URL", nil, []string{"--postgres", pg, "--postgres-admin", pg, "--shard", "eu=" + pg}, "--shard-admin eu="},
		{"--shard that is not NAME=URL", nil, []string{"--postgres", pg, "--postgres-admin", pg, "--shard", pg}, "NAME=URL"},
		{"a shard admin URL from the environment without its shard",
			map[string]string{"BULKHEAD_SHARD_ADMIN": "eu=" + pg + ",us=" + pg, "BULKHEAD_SHARD": "eu=" + pg},
			[]string{"--postgres", pg, "--postgres-admin", pg}, "--shard-admin us"},
		{"a password never shows in the message", nil,
			[]string{"--postgres", pg, "--postgres-admin", pg, "--shard", "postgres://u:hunter2@h/db"}, "xxxxx"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is a usage error", func(t *testing.T) {
			r := runCLI(t, tc.env, append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, tc.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tc.want)
			}
			if strings.Contains(r.stderr, "hunter2") {
				t.Fatalf("the password is in the message: %s", r.stderr)
			}
		})
	}
}

func TestSplitList(t *testing.T) {
	cases := map[string][]string{
		"eu=postgres://a/db":                         {"eu=postgres://a/db"},
		"eu=postgres://a/db, us=postgres://b/db":     {"eu=postgres://a/db", "us=postgres://b/db"},
		"eu=postgres://h1:5432,h2:5432/db,us=pg://b": {"eu=postgres://h1:5432,h2:5432/db", "us=pg://b"},
	}
	for in, want := range cases {
		if got := splitList(in); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("splitList(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestServeOnPostgres starts serve on two PostgreSQL shards (one given by
// the environment, as a deployment would), provisions a tenant on each, and
// refuses to start once a serving role may bypass row-level security.
func TestServeOnPostgres(t *testing.T) {
	main, eu := pgtest.New(t), pgtest.New(t)
	dir := t.TempDir()
	args := []string{"--postgres", main.ServeURL, "--postgres-admin", main.AdminURL,
		"--shard", "eu=" + eu.ServeURL, "--shard-admin", "eu=" + eu.AdminURL}
	url, logs, stop := startServe(t, dir, args...)
	env := map[string]string{"BULKHEAD_ADDR": url, "BULKHEAD_DATA_DIR": dir}
	for _, id := range []string{"acme", "globex"} {
		mustSucceed(t, runCLI(t, env, "tenant", "create", id, "--isolation", "schema"))
	}
	out := runCLI(t, env, "tenant", "list")
	if !strings.Contains(out.stdout, "eu") || !strings.Contains(out.stdout, "main") {
		t.Fatalf("tenants are not spread over both shards:\n%s", out.stdout)
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d; log:\n%s", code, logs.String())
	}
	for _, secret := range []string{main.ServeURL, main.AdminURL} {
		if strings.Contains(logs.String(), secret) {
			t.Fatal("the log holds a database URL with its password")
		}
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, eu.SuperURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{eu.Serving}.Sanitize()+" SUPERUSER"); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, nil, append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dir}, args...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "refusing to serve") || !strings.Contains(r.stderr, "shard eu") {
		t.Fatalf("serve with a superuser serving role: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{eu.Serving}.Sanitize()+" NOSUPERUSER"); err != nil {
		t.Fatal(err)
	}
}
