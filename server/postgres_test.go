package server_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/keys"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
)

// pgOptions returns server options for PostgreSQL with the main shard and
// the named extra shards, each on its own pgtest database and roles.
func pgOptions(t *testing.T, extra ...string) (server.Options, map[string]pgtest.Env) {
	t.Helper()
	envs := map[string]pgtest.Env{}
	main := pgtest.New(t)
	envs[server.MainShard] = main
	opts := server.Options{
		PostgresURL:            main.ServeURL,
		PostgresAdminURL:       main.AdminURL,
		PostgresMaxConns:       3,
		PostgresDatabasePrefix: main.Prefix,
		MaxOpenDatabases:       4,
	}
	for _, name := range extra {
		e := pgtest.New(t)
		envs[name] = e
		opts.Shards = append(opts.Shards, server.ShardURLs{Name: name, URL: e.ServeURL, AdminURL: e.AdminURL})
	}
	return opts, envs
}

func TestCrossTenantIsolationOnPostgres(t *testing.T) {
	for _, mode := range []string{"pooled", "schema", "database"} {
		t.Run(mode, func(t *testing.T) {
			opts, _ := pgOptions(t, "eu")
			e := newEnvIn(t, t.TempDir(), opts)
			testCrossTenantIsolation(t, e, mode)

			// The fewest-tenants rule spread them: acme went to the empty
			// shard "eu" (first by name), beta to "main"; acme, recreated
			// after its deletion, to "eu" again.
			for id, shard := range map[string]string{"acme": "eu", "beta": "main"} {
				r := e.req("GET", "/v1/admin/tenants/"+id, e.op, nil)
				want(t, r, 200, "")
				p := r.json(t)["placement"].(map[string]any)
				if p["shard"] != shard || p["mode"] != mode {
					t.Errorf("%s placement = %v, want shard %s mode %s", id, p, shard, mode)
				}
			}
		})
	}
}

func TestPlacementOnShards(t *testing.T) {
	opts, _ := pgOptions(t, "eu")
	e := newEnvIn(t, t.TempDir(), opts)
	shardOf := func(r resp) string {
		t.Helper()
		want(t, r, 201, "")
		return r.json(t)["placement"].(map[string]any)["shard"].(string)
	}
	// Named shards win over the rule; the rule then fills the emptier one.
	for _, id := range []string{"m1", "m2"} {
		if s := shardOf(e.req("POST", "/v1/admin/tenants", e.op, map[string]string{"id": id, "shard": "main"})); s != "main" {
			t.Fatalf("%s went to %s, want main (named)", id, s)
		}
	}
	for _, id := range []string{"r1", "r2", "r3"} {
		if s := shardOf(e.req("POST", "/v1/admin/tenants", e.op, map[string]string{"id": id})); s != "eu" {
			t.Fatalf("%s went to %s, want eu (fewest tenants)", id, s)
		}
	}
	if s := shardOf(e.req("POST", "/v1/admin/tenants", e.op, map[string]string{"id": "r4", "isolation": "schema"})); s != "eu" && s != "main" {
		t.Fatalf("r4 went to %q", s)
	}
	for _, shard := range []string{"us", "", "local", strings.Repeat("x", 100)} {
		r := e.req("POST", "/v1/admin/tenants", e.op, map[string]string{"id": "nowhere", "shard": shard})
		want(t, r, 400, "invalid_shard")
	}
	want(t, e.req("GET", "/v1/admin/tenants/nowhere", e.op, nil), 404, "tenant_not_found")
}

func TestShardIsRefusedOnSQLiteUnlessLocal(t *testing.T) {
	e := newEnv(t)
	want(t, e.req("POST", "/v1/admin/tenants", e.op, map[string]string{"id": "acme", "shard": "eu"}), 400, "invalid_shard")
	r := e.req("POST", "/v1/admin/tenants", e.op, map[string]string{"id": "acme", "shard": "local"})
	want(t, r, 201, "")
}

// TestAnInstanceWithAnotherKeyringDoesNotStart: instances on one
// PostgreSQL must share the keyring that wraps the tenants' keys; one with
// a keyring of its own would fail every tenant's requests, so it fails at
// start, saying so.
func TestAnInstanceWithAnotherKeyringDoesNotStart(t *testing.T) {
	opts, _ := pgOptions(t)
	newEnvIn(t, t.TempDir(), opts)
	opts.DataDir = t.TempDir()
	s, err := server.Open(context.Background(), opts)
	if err == nil {
		s.Close()
		t.Fatal("an instance with another keyring started")
	}
	if !errors.Is(err, keys.ErrWrongKeyring) || !strings.Contains(err.Error(), "--keyring") {
		t.Fatalf("error %v, want keys.ErrWrongKeyring naming --keyring", err)
	}
}

// TestInstancesShareChanges runs two servers on one PostgreSQL (each with
// a data dir of its own holding the same operator token, cursor key and
// keyring, as instances behind a load balancer do): what the control plane changes
// through one is enforced by the other within one second.
func TestInstancesShareChanges(t *testing.T) {
	opts, _ := pgOptions(t)
	dir, dirB := t.TempDir(), t.TempDir()
	a := newEnvIn(t, dir, opts)
	for _, f := range []string{"operator.token", "cursor.key", "keyring"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(dirB, f), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	b := newEnvIn(t, dirB, opts)
	var worst time.Duration
	within := func(what string, cond func() bool) {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > time.Second {
				t.Fatalf("%s through instance A is not enforced by instance B within 1s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
		d := time.Since(start)
		worst = max(worst, d)
		t.Logf("%s: enforced by the other instance after %v", what, d.Round(time.Microsecond))
	}
	const rec = "/v1/collections/notes/records/n1"

	tok := a.tenantWithKey("acme", "pooled")
	within("create", func() bool { return b.req("PUT", rec, tok, `{"v":1}`).status == 201 })
	other, _ := a.createKey("acme", "reader")
	want(t, b.req("GET", rec, other, nil), 200, "") // B caches the tenant and the keys

	want(t, a.req("POST", "/v1/admin/tenants/acme/suspend", a.op, nil), 200, "")
	within("suspend", func() bool { return b.req("GET", rec, tok, nil).status == 403 })
	want(t, a.req("POST", "/v1/admin/tenants/acme/resume", a.op, nil), 200, "")
	within("resume", func() bool { return b.req("GET", rec, tok, nil).status == 200 })

	tok3, keyID := a.createKey("acme", "writer")
	want(t, b.req("GET", rec, tok3, nil), 200, "") // B caches the key
	want(t, a.req("DELETE", "/v1/admin/tenants/acme/keys/"+keyID, a.op, nil), 204, "")
	within("revoke", func() bool { return b.req("GET", rec, tok3, nil).status == 401 })
	want(t, b.req("GET", rec, tok, nil), 200, "")

	want(t, a.req("DELETE", "/v1/admin/tenants/acme", a.op, nil), 204, "")
	within("delete", func() bool {
		return b.req("GET", rec, tok, nil).status == 401 && b.req("GET", rec, other, nil).status == 401
	})
	t.Logf("worst cross-instance latency: %v", worst)
}

// TestUnsafeServingRoleRefusesToStart: a serving role that could bypass
// row-level security stops Open with an error saying how to fix it.
func TestUnsafeServingRoleRefusesToStart(t *testing.T) {
	opts, envs := pgOptions(t)
	env := envs[server.MainShard]
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, env.SuperURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{env.Serving}.Sanitize()+" BYPASSRLS"); err != nil {
		t.Fatal(err)
	}
	opts.DataDir = t.TempDir()
	s, err := server.Open(ctx, opts)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with a BYPASSRLS serving role")
	}
	if !errors.Is(err, postgres.ErrUnsafeServingRole) || !strings.Contains(err.Error(), "refusing to serve") {
		t.Fatalf("err = %v, want ErrUnsafeServingRole and 'refusing to serve'", err)
	}
	t.Logf("Open: %v", err)
}

func TestOptionsValidate(t *testing.T) {
	pg := "postgres://app@db:5432/bulkhead"
	cases := []struct {
		name string
		opts server.Options
		want string // "" = valid
	}{
		{"SQLite alone", server.Options{}, ""},
		{"PostgreSQL with both roles", server.Options{PostgresURL: pg, PostgresAdminURL: pg}, ""},
		{"a serving URL without an admin URL", server.Options{PostgresURL: pg}, "Options.PostgresAdminURL: missing"},
		{"shards without PostgreSQL", server.Options{Shards: []server.ShardURLs{{Name: "eu", URL: pg, AdminURL: pg}}}, "need PostgreSQL"},
		{"a shard without admin URL", server.Options{PostgresURL: pg, PostgresAdminURL: pg, Shards: []server.ShardURLs{{Name: "eu", URL: pg}}}, `shard "eu" AdminURL`},
		{"a shard named main", server.Options{PostgresURL: pg, PostgresAdminURL: pg, Shards: []server.ShardURLs{{Name: "main", URL: pg, AdminURL: pg}}}, "reserved"},
		{"a shard given twice", server.Options{PostgresURL: pg, PostgresAdminURL: pg, Shards: []server.ShardURLs{{Name: "eu", URL: pg, AdminURL: pg}, {Name: "eu", URL: pg, AdminURL: pg}}}, "twice"},
		{"a bad shard name", server.Options{PostgresURL: pg, PostgresAdminURL: pg, Shards: []server.ShardURLs{{Name: "EU!", URL: pg, AdminURL: pg}}}, "invalid shard name"},
		{"a non-PostgreSQL URL", server.Options{PostgresURL: "mysql://x/y", PostgresAdminURL: pg}, "scheme"},
		{"a database prefix", server.Options{PostgresURL: pg, PostgresAdminURL: pg, PostgresDatabasePrefix: "bh_prod_1"}, ""},
		{"a database prefix with a capital and a dash", server.Options{PostgresURL: pg, PostgresAdminURL: pg, PostgresDatabasePrefix: "Bh-"}, "Options.PostgresDatabasePrefix"},
		{"a database prefix of 21 characters", server.Options{PostgresURL: pg, PostgresAdminURL: pg, PostgresDatabasePrefix: strings.Repeat("p", 21)}, "at most 20"},
		{"a database prefix without PostgreSQL", server.Options{PostgresDatabasePrefix: "bh_"}, "needs PostgreSQL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
			var oe *server.OptionError
			if err != nil && !errors.As(err, &oe) {
				t.Fatalf("err = %v, not an *OptionError (the CLI names the flag from it)", err)
			}
			if err != nil && strings.Contains(err.Error(), "--") {
				t.Fatalf("err = %v names a CLI flag", err)
			}
		})
	}
}

// The identity, support-access and audit attacks again with the catalog
// and the audit log on PostgreSQL.
func TestAttacksOnPostgres(t *testing.T) {
	t.Run("jwt", func(t *testing.T) {
		opts, _ := pgOptions(t)
		testAttackJWT(t, opts)
	})
	t.Run("support access", func(t *testing.T) {
		opts, _ := pgOptions(t)
		testSupportAccess(t, opts)
	})
}
