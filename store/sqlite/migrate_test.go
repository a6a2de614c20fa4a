package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var notesMigrations = []migrate.Migration{
	{Version: 1, Name: "notes", SQL: `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`},
	{Version: 2, Name: "done", SQL: `ALTER TABLE notes ADD COLUMN done INTEGER NOT NULL DEFAULT 0;
		CREATE INDEX notes_done ON notes (done)`},
}

func versions(t *testing.T, e *storetest.Env, ctx context.Context) []int {
	t.Helper()
	var vs []int
	err := ReadTx(ctx, e.Router, func(tx *sql.Tx) error {
		rows, err := tx.Query(`SELECT version FROM schema_migrations ORDER BY version`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				return err
			}
			vs = append(vs, v)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestApplyMigratesADatabaseTenant(t *testing.T) {
	b := open(t, t.TempDir(), Options{})
	e := storetest.NewEnv(t, b, store.Database)
	acme := e.Tenant(t, "acme")
	u := migrate.Unit{Shard: storetest.Shard, Mode: store.Database, Tenant: tenant.MustParse("acme")}
	ctx := context.Background()
	t.Run("applies in order and returns the new version", func(t *testing.T) {
		v, err := b.Apply(ctx, u, notesMigrations[:1])
		if err != nil || v != 1 {
			t.Fatalf("Apply = %d, %v", v, err)
		}
		if v, err = b.Apply(ctx, u, []migrate.Migration{notesMigrations[1], notesMigrations[0]}); err != nil || v != 2 {
			t.Fatalf("Apply = %d, %v", v, err)
		}
		if got := versions(t, e, acme); len(got) != 2 || got[1] != 2 {
			t.Fatalf("schema_migrations %v", got)
		}
	})
	t.Run("is idempotent", func(t *testing.T) {
		if v, err := b.Apply(ctx, u, notesMigrations); err != nil || v != 2 {
			t.Fatalf("Apply again = %d, %v", v, err)
		}
		if err := Tx(acme, e.Router, func(tx *sql.Tx) error {
			_, err := tx.Exec(`INSERT INTO notes (body, done) VALUES ('x', 1)`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a failing migration leaves the unit at the last good version", func(t *testing.T) {
		bad := append(notesMigrations[:2:2], migrate.Migration{Version: 3, Name: "bad", SQL: `CREATE TABLE t3 (a); SELECT nope FROM nowhere`})
		v, err := b.Apply(ctx, u, bad)
		if err == nil || v != 2 {
			t.Fatalf("Apply = %d, %v", v, err)
		}
		if got := versions(t, e, acme); len(got) != 2 {
			t.Fatalf("schema_migrations %v", got)
		}
	})
	t.Run("a migration is guarded like own SQL", func(t *testing.T) {
		for _, q := range []string{`ATTACH ':memory:' AS m`, `UPDATE tenant_usage SET bytes = 0`, `INSERT INTO schema_migrations VALUES (9, 'x', 0)`} {
			_, err := b.Apply(ctx, u, append(notesMigrations[:2:2], migrate.Migration{Version: 3, Name: "evil", SQL: q}))
			if !errors.Is(err, ErrRefused) {
				t.Errorf("%s: %v, want ErrRefused", q, err)
			}
		}
	})
	t.Run("versions must be positive and distinct", func(t *testing.T) {
		for _, ms := range [][]migrate.Migration{
			{{Version: 0, Name: "zero", SQL: `SELECT 1`}},
			{{Version: 1, Name: "a", SQL: `SELECT 1`}, {Version: 1, Name: "b", SQL: `SELECT 1`}},
		} {
			if _, err := b.Apply(ctx, u, ms); err == nil {
				t.Errorf("Apply(%v) succeeded", ms)
			}
		}
	})
	t.Run("pooled units are not migration units", func(t *testing.T) {
		_, err := b.Apply(ctx, migrate.Unit{Shard: storetest.Shard, Mode: store.Pooled}, notesMigrations)
		if !errors.Is(err, ErrNoPooledUnit) || !errors.Is(err, store.ErrIsolationUnsupported) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("an unprovisioned tenant is unknown", func(t *testing.T) {
		_, err := b.Apply(ctx, migrate.Unit{Shard: storetest.Shard, Mode: store.Database, Tenant: tenant.MustParse("ghost")}, notesMigrations)
		if !errors.Is(err, store.ErrUnknownTenant) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestProvisionAppliesMigrationsAtomically(t *testing.T) {
	t.Run("a new tenant is provisioned migrated", func(t *testing.T) {
		e := storetest.NewEnv(t, open(t, t.TempDir(), Options{Migrations: notesMigrations}), store.Database)
		acme := e.Tenant(t, "acme")
		if got := versions(t, e, acme); len(got) != 2 {
			t.Fatalf("schema_migrations %v", got)
		}
		if err := e.Router.Provision(context.Background(), tenant.MustParse("acme"), store.Placement{Mode: store.Database, Shard: storetest.Shard}); err != nil {
			t.Fatalf("provision again: %v", err)
		}
		if got := versions(t, e, acme); len(got) != 2 {
			t.Fatalf("schema_migrations after provisioning again %v", got)
		}
	})
	t.Run("a failing migration leaves no file", func(t *testing.T) {
		bad := append(notesMigrations[:2:2], migrate.Migration{Version: 3, Name: "bad", SQL: `SELECT nope FROM nowhere`})
		b := open(t, t.TempDir(), Options{Migrations: bad})
		defer b.Close()
		id := tenant.MustParse("acme")
		if err := b.Provision(context.Background(), id, store.Database); err == nil {
			t.Fatal("Provision succeeded")
		}
		if b.fileExists(id) {
			t.Fatal("a failed Provision left the tenant's file")
		}
		if _, err := b.Begin(context.Background(), id, store.Database, false); !errors.Is(err, store.ErrUnknownTenant) {
			t.Fatalf("Begin after a failed Provision: %v", err)
		}
	})
}
