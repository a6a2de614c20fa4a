package server_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for the key store

	"github.com/bulkhead-dev/bulkhead/keys"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// pgRecords reads a tenant's rows as the superuser, straight from the
// table its isolation mode keeps them in (what a dump of it holds).
func pgRecords(t *testing.T, env pgtest.Env, id, mode string) []rawRecord {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(env.SuperURL)
	if err != nil {
		t.Fatal(err)
	}
	schema := "bulkhead"
	switch mode {
	case "schema":
		schema = tenant.MustParse(id).StorageName()
	case "database":
		u.Path = "/" + env.Prefix + tenant.MustParse(id).StorageName()
	}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT collection, id, data::text, version FROM `+pgx.Identifier{schema, "records"}.Sanitize()+`
		WHERE tenant_id = $1 ORDER BY collection, id`, id)
	if err != nil {
		t.Fatal(err)
	}
	var out []rawRecord
	for rows.Next() {
		var r rawRecord
		if err := rows.Scan(&r.Collection, &r.ID, &r.Data, &r.Version); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestShreddingOnPostgres: what a backup of a PostgreSQL shard holds of
// a pooled, a schema-mode and a database-mode tenant (their rows, read as
// the superuser) no longer decrypts once the tenants are deleted through
// the API: the key store (schema bulkhead_keys) has no keys for them, and
// the tenants created again with the same ids get new keys that do not
// open the old envelopes.
func TestShreddingOnPostgres(t *testing.T) {
	ctx := context.Background()
	opts, envs := pgOptions(t)
	dir := t.TempDir()
	e := newEnvIn(t, dir, opts)
	env := envs[server.MainShard]
	doomed := map[string]string{"doomed-po": "pooled", "doomed-sc": "schema", "doomed-db": "database"}
	for id, mode := range doomed {
		writeNeedles(e, e.tenantWithKey(id, mode), id)
	}
	stored := map[string][]rawRecord{}
	for id, mode := range doomed {
		stored[id] = pgRecords(t, env, id, mode)
		if len(stored[id]) != 11 {
			t.Fatalf("%s: %d stored records, want 11", id, len(stored[id]))
		}
	}

	db, err := sql.Open("pgx", env.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := keys.OpenSQLStore(ctx, db, true)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.OpenKeyring(filepath.Join(dir, "keyring"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := keys.New(keys.Config{KMS: ring, KEKURI: ring.URI(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for id := range doomed {
		if _, err := openWith(t, m, id, stored[id][0]); err != nil {
			t.Fatalf("%s: before the deletion its records do not open (the test is broken): %v", id, err)
		}
		m.Forget(tenant.MustParse(id))
	}

	for id := range doomed {
		want(t, e.req("DELETE", "/v1/admin/tenants/"+id, e.op, nil), 204, "")
		if _, err := m.Info(ctx, tenant.MustParse(id)); !errors.Is(err, keys.ErrNoKeys) {
			t.Errorf("%s deleted: Info = %v, want ErrNoKeys", id, err)
		}
	}
	for id, mode := range doomed {
		tok := e.tenantWithKey(id, mode)
		want(t, e.req("PUT", "/v1/collections/fresh/records/f1", tok, `{"fresh":true}`), 201, "")
		for _, r := range stored[id] {
			if pt, err := openWith(t, m, id, r); !errors.Is(err, keys.ErrUndecryptable) {
				t.Fatalf("%s created again opens %s/%s of before: %q %v", id, r.Collection, r.ID, pt, err)
			}
		}
	}
}
