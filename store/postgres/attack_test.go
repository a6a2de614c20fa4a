package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// teamMigrations are a team's own tables: tenant first in every key, and a
// composite foreign key, so a reference cannot cross tenants.
var teamMigrations = []migrate.Migration{
	{Version: 1, Name: "customers", SQL: `CREATE TABLE customers (
		tenant_id text NOT NULL DEFAULT current_setting('bulkhead.tenant'),
		id text NOT NULL,
		name text NOT NULL,
		PRIMARY KEY (tenant_id, id))`},
	{Version: 2, Name: "invoices", SQL: `CREATE TABLE invoices (
		tenant_id text NOT NULL DEFAULT current_setting('bulkhead.tenant'),
		id text NOT NULL,
		customer_id text NOT NULL,
		total bigint NOT NULL,
		PRIMARY KEY (tenant_id, id),
		FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id));
		CREATE INDEX invoices_customer ON invoices (tenant_id, customer_id)`},
}

// world is a Router over one PostgreSQL backend with the team's tables.
type world struct {
	env pgtest.Env
	b   *Backend
	e   *storetest.Env
}

func newWorld(t *testing.T, mode store.Mode, maxConns int32) *world {
	t.Helper()
	env := pgtest.New(t)
	b := open(t, env, Options{MaxConns: maxConns, Migrations: teamMigrations})
	return &world{env: env, b: b, e: storetest.NewEnv(t, b, mode)}
}

// super returns a superuser connection to the test database.
func (w *world) super(t *testing.T) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), w.env.SuperURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func (w *world) exec(t *testing.T, ctx context.Context, sql string, args ...any) {
	t.Helper()
	if err := Tx(ctx, w.e.Router, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql, args...)
		return err
	}); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// seen returns the tenant setting, search_path and the tenant_ids visible
// in customers (no predicate: only the database's guards apply).
func (w *world) seen(t *testing.T, ctx context.Context) (setting, path string, owners []string) {
	t.Helper()
	err := Tx(ctx, w.e.Router, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT coalesce(current_setting('bulkhead.tenant', true), ''), current_setting('search_path')`).Scan(&setting, &path); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT DISTINCT tenant_id FROM customers ORDER BY 1`)
		if err != nil {
			return err
		}
		owners, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return setting, path, owners
}

func TestServingRoleIsNotOwnerSuperuserOrBypassRLS(t *testing.T) {
	w := newWorld(t, store.Schema, 2)
	w.e.Tenant(t, "acme")
	sup := w.super(t)
	ctx := context.Background()
	var super, bypass bool
	if err := sup.QueryRow(ctx, `SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1`, w.env.Serving).Scan(&super, &bypass); err != nil {
		t.Fatal(err)
	}
	if super || bypass {
		t.Fatalf("serving role: superuser %v, bypassrls %v", super, bypass)
	}
	// Every table with a tenant_id, pooled or in the tenant's schema, forces
	// RLS and is owned by the admin role, not the serving role.
	rows, err := sup.Query(ctx, `SELECT n.nspname || '.' || c.relname, c.relrowsecurity, c.relforcerowsecurity,
			pg_get_userbyid(c.relowner), pg_has_role($1, c.relowner, 'MEMBER')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname IN ('bulkhead', 't_acme')
		  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
		ORDER BY 1`, w.env.Serving)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var name, owner string
		var rls, force, member bool
		if err := rows.Scan(&name, &rls, &force, &owner, &member); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		if !rls || !force || owner != w.env.Owner || member {
			t.Errorf("%s: rls %v force %v owner %s (serving role a member: %v)", name, rls, force, owner, member)
		}
	}
	want := []string{"bulkhead.customers", "bulkhead.invoices", "bulkhead.records", "bulkhead.tenant_event_offsets", "bulkhead.tenant_events", "bulkhead.tenant_usage",
		"t_acme.customers", "t_acme.invoices", "t_acme.records", "t_acme.tenant_event_offsets", "t_acme.tenant_events", "t_acme.tenant_usage"}
	if !slices.Equal(names, want) {
		t.Fatalf("tenant tables %v, want %v", names, want)
	}
	if err := w.b.CheckServingRole(ctx); err != nil {
		t.Fatalf("CheckServingRole on a safe role: %v", err)
	}

	serving := pgx.Identifier{w.env.Serving}.Sanitize()
	pooled := storetest.NewEnv(t, w.b, store.Pooled)
	pctx := pooled.Tenant(t, "pooled-co")
	for _, c := range []struct{ name, breakIt, repair, want string }{
		{"owner of records", `ALTER TABLE bulkhead.records OWNER TO ` + serving, `ALTER TABLE bulkhead.records OWNER TO ` + pgx.Identifier{w.env.Owner}.Sanitize(), "owns"},
		{"member of the owner", `GRANT ` + pgx.Identifier{w.env.Owner}.Sanitize() + ` TO ` + serving, `REVOKE ` + pgx.Identifier{w.env.Owner}.Sanitize() + ` FROM ` + serving, "owns"},
		{"BYPASSRLS", `ALTER ROLE ` + serving + ` BYPASSRLS`, `ALTER ROLE ` + serving + ` NOBYPASSRLS`, "BYPASSRLS"},
		{"superuser", `ALTER ROLE ` + serving + ` SUPERUSER`, `ALTER ROLE ` + serving + ` NOSUPERUSER`, "superuser"},
		{"RLS not forced", `ALTER TABLE bulkhead.invoices NO FORCE ROW LEVEL SECURITY`, `ALTER TABLE bulkhead.invoices FORCE ROW LEVEL SECURITY`, "not enabled and forced on invoices"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := sup.Exec(ctx, c.breakIt); err != nil {
				t.Fatal(err)
			}
			err := w.b.CheckServingRole(ctx)
			if !errors.Is(err, ErrUnsafeServingRole) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "NOBYPASSRLS") {
				t.Errorf("CheckServingRole = %v, want ErrUnsafeServingRole mentioning %q and how to fix it", err, c.want)
			}
			// Pooled tenants fail closed; the check's result sticks until it passes again.
			_, err = pooled.Router.Begin(pctx, store.TxOptions{})
			if !errors.Is(err, ErrUnsafeServingRole) {
				t.Errorf("Begin for a pooled tenant with an unsafe role = %v", err)
			}
			if err := Tx(pctx, pooled.Router, func(pgx.Tx) error { return nil }); !errors.Is(err, ErrUnsafeServingRole) {
				t.Errorf("postgres.Tx for a pooled tenant with an unsafe role = %v", err)
			}
			if _, err := sup.Exec(ctx, c.repair); err != nil {
				t.Fatal(err)
			}
			if err := w.b.CheckServingRole(ctx); err != nil {
				t.Fatalf("CheckServingRole after repair: %v", err)
			}
			tx, err := pooled.Router.Begin(pctx, store.TxOptions{ReadOnly: true})
			if err != nil {
				t.Fatalf("Begin after repair: %v", err)
			}
			_ = tx.Rollback()
		})
	}
}

// An unsafe serving role does not stop Open (serve decides), but pooled
// tenants are refused from the start.
func TestOpenWithUnsafeRoleRefusesPooledTenants(t *testing.T) {
	env := pgtest.New(t)
	b, err := Open(context.Background(), Shard{Name: storetest.Shard, URL: env.AdminURL, AdminURL: env.AdminURL}, Options{MaxConns: 2})
	if err != nil {
		t.Fatalf("Open with the owner as serving role: %v", err)
	}
	e := storetest.NewEnv(t, b, store.Pooled)
	ctx := e.Tenant(t, "acme")
	if _, err := e.Router.Begin(ctx, store.TxOptions{}); !errors.Is(err, ErrUnsafeServingRole) {
		t.Fatalf("Begin = %v, want ErrUnsafeServingRole", err)
	}
}

func TestPooledConnectionNeverCarriesATenant(t *testing.T) {
	for _, mode := range []store.Mode{store.Pooled, store.Schema} {
		t.Run(string(mode), func(t *testing.T) {
			w := newWorld(t, mode, 1) // one connection: every transaction reuses it
			a, b := w.e.Tenant(t, "tenant-a"), w.e.Tenant(t, "tenant-b")
			w.exec(t, a, `INSERT INTO customers (id, name) VALUES ('c1', 'A')`)
			w.exec(t, b, `INSERT INTO customers (id, name) VALUES ('c1', 'B')`)
			wantPath := map[store.Mode]string{store.Pooled: `"bulkhead"`, store.Schema: `"t_tenant_b"`}[mode]
			checkB := func(t *testing.T, after string) {
				t.Helper()
				setting, path, owners := w.seen(t, b)
				if setting != "tenant-b" || path != wantPath || !slices.Equal(owners, []string{"tenant-b"}) {
					t.Fatalf("after %s in A: B's transaction has tenant %q, search_path %q, sees %v", after, setting, path, owners)
				}
				// And the connection, back in the pool, carries nothing.
				var s, p string
				if err := w.b.serve.QueryRow(context.Background(), `SELECT coalesce(current_setting('bulkhead.tenant', true), ''), current_setting('search_path')`).Scan(&s, &p); err != nil {
					t.Fatal(err)
				}
				if s != "" || strings.Contains(p, "t_") || strings.Contains(p, "bulkhead") {
					t.Fatalf("after %s: idle pooled connection has tenant %q, search_path %q", after, s, p)
				}
			}
			errBoom := errors.New("boom")
			ends := []struct {
				name string
				run  func() error
			}{
				{"commit", func() error {
					return Tx(a, w.e.Router, func(tx pgx.Tx) error {
						_, err := tx.Exec(a, `UPDATE customers SET name = 'A2'`)
						return err
					})
				}},
				{"rollback", func() error {
					return Tx(a, w.e.Router, func(tx pgx.Tx) error { return errBoom })
				}},
				{"panic", func() (err error) {
					defer func() {
						if p := recover(); p != nil {
							err = fmt.Errorf("panicked: %v", p)
						}
					}()
					return Tx(a, w.e.Router, func(tx pgx.Tx) error { panic("boom") })
				}},
				{"cancellation mid-query", func() error {
					ctx, cancel := context.WithTimeout(a, 200*time.Millisecond)
					defer cancel()
					return Tx(ctx, w.e.Router, func(tx pgx.Tx) error {
						_, err := tx.Exec(ctx, `SELECT pg_sleep(30)`)
						return err
					})
				}},
				{"router rollback", func() error {
					return w.e.Router.Tx(a, func(tx *store.Tx) error {
						if _, _, err := tx.Put(a, "c", "r", []byte(`{}`), store.IfMatch{}); err != nil {
							return err
						}
						return errBoom
					})
				}},
			}
			for _, end := range ends {
				t.Run(end.name, func(t *testing.T) {
					err := end.run()
					if end.name == "commit" && err != nil || end.name != "commit" && err == nil {
						t.Fatalf("A's transaction: %v", err)
					}
					checkB(t, end.name)
				})
			}
		})
	}
}

func TestSavepointRollbackKeepsTheTenant(t *testing.T) {
	w := newWorld(t, store.Pooled, 1)
	a, b := w.e.Tenant(t, "tenant-a"), w.e.Tenant(t, "tenant-b")
	w.exec(t, a, `INSERT INTO customers (id, name) VALUES ('ca', 'A')`)
	w.exec(t, b, `INSERT INTO customers (id, name) VALUES ('cb', 'B')`)
	err := Tx(a, w.e.Router, func(tx pgx.Tx) error {
		sp, err := tx.Begin(a)
		if err != nil {
			return err
		}
		if _, err := sp.Exec(a, `INSERT INTO customers (tenant_id, id, name) VALUES ('tenant-b', 'x', 'evil')`); err == nil {
			return errors.New("insert of another tenant's row succeeded")
		}
		if err := sp.Rollback(a); err != nil {
			return err
		}
		var setting string
		var n int
		if err := tx.QueryRow(a, `SELECT current_setting('bulkhead.tenant'), (SELECT count(*) FROM customers)`).Scan(&setting, &n); err != nil {
			return err
		}
		if setting != "tenant-a" || n != 1 {
			return fmt.Errorf("after savepoint rollback: tenant %q, %d customers visible", setting, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRawServingConnectionWithoutTenantSeesNothing(t *testing.T) {
	w := newWorld(t, store.Pooled, 2)
	a := w.e.Tenant(t, "tenant-a")
	w.exec(t, a, `INSERT INTO customers (id, name) VALUES ('c1', 'A')`)
	if _, _, err := storetestPut(w, a); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, w.env.ServeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, table := range []string{"bulkhead.records", "bulkhead.customers"} {
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("serving role without a tenant sees %d rows of %s", n, table)
		}
		// After a transaction-local setting ends, the setting reads '' — still nothing.
		if _, err := c.Exec(ctx, `BEGIN; SELECT set_config('bulkhead.tenant', 'tenant-a', true); COMMIT`); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil || n != 0 {
			t.Fatalf("after a local setting ended: %d rows of %s (%v)", n, table, err)
		}
	}
	// Writes without a tenant are refused by the policies' WITH CHECK.
	if _, err := c.Exec(ctx, `INSERT INTO bulkhead.customers (tenant_id, id, name) VALUES ('tenant-a', 'x', 'y')`); err == nil {
		t.Fatal("insert without a tenant setting succeeded")
	}
}

func storetestPut(w *world, ctx context.Context) (store.Record, bool, error) {
	var rec store.Record
	var created bool
	err := w.e.Router.Tx(ctx, func(tx *store.Tx) error {
		var err error
		rec, created, err = tx.Put(ctx, "c", "r", []byte(`{"a":1}`), store.IfMatch{})
		return err
	})
	return rec, created, err
}

func TestCrossTenantWritesAndReferencesFail(t *testing.T) {
	for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
		t.Run(string(mode), func(t *testing.T) {
			w := newWorld(t, mode, 2)
			a, b := w.e.Tenant(t, "tenant-a"), w.e.Tenant(t, "tenant-b")
			w.exec(t, a, `INSERT INTO customers (id, name) VALUES ('ca', 'A')`)
			w.exec(t, b, `INSERT INTO customers (id, name) VALUES ('cb', 'B')`)
			for _, c := range []struct{ name, sql string }{
				{"insert a row of another tenant", `INSERT INTO customers (tenant_id, id, name) VALUES ('tenant-b', 'x', 'evil')`},
				{"insert a record of another tenant", `INSERT INTO records (tenant_id, collection, id, data, version, created_at, updated_at)
					VALUES ('tenant-b', 'c', 'x', '{}', 1, now(), now())`},
				{"move a row to another tenant", `UPDATE customers SET tenant_id = 'tenant-b' WHERE id = 'ca'`},
				{"reference another tenant's row", `INSERT INTO invoices (id, customer_id, total) VALUES ('i1', 'cb', 1)`},
				{"reference another tenant's row with its tenant_id", `INSERT INTO invoices (tenant_id, id, customer_id, total) VALUES ('tenant-b', 'i1', 'cb', 1)`},
			} {
				err := Tx(a, w.e.Router, func(tx pgx.Tx) error {
					_, err := tx.Exec(a, c.sql)
					return err
				})
				if err == nil {
					t.Errorf("%s: succeeded", c.name)
				}
			}
			w.exec(t, a, `INSERT INTO invoices (id, customer_id, total) VALUES ('i1', 'ca', 1)`) // its own: fine
			if _, _, owners := w.seen(t, b); !slices.Equal(owners, []string{"tenant-b"}) {
				t.Fatalf("B sees %v", owners)
			}
		})
	}
}

func TestUniqueConstraintsArePerTenant(t *testing.T) {
	w := newWorld(t, store.Pooled, 2)
	a, b := w.e.Tenant(t, "tenant-a"), w.e.Tenant(t, "tenant-b")
	w.exec(t, b, `INSERT INTO customers (id, name) VALUES ('x', 'B')`)
	w.exec(t, a, `INSERT INTO customers (id, name) VALUES ('x', 'A')`) // succeeds: the key is (tenant_id, id)
	put := func(ctx context.Context, data string) (bool, error) {
		var created bool
		err := w.e.Router.Tx(ctx, func(tx *store.Tx) error {
			var err error
			_, created, err = tx.Put(ctx, "c", "x", []byte(data), store.IfMatch{})
			return err
		})
		return created, err
	}
	if created, err := put(b, `{"owner":"b"}`); err != nil || !created {
		t.Fatalf("B creates x: %v %v", created, err)
	}
	if created, err := put(a, `{"owner":"a"}`); err != nil || !created {
		t.Fatalf("A creates x while B has x: created=%v err=%v (want a new record, revealing nothing)", created, err)
	}
	var name string
	err := Tx(b, w.e.Router, func(tx pgx.Tx) error {
		return tx.QueryRow(b, `SELECT name FROM customers WHERE id = 'x'`).Scan(&name)
	})
	if err != nil || name != "B" {
		t.Fatalf("B's customer x: %q %v", name, err)
	}
}

func TestTenantIdentifiersAreDerivedAndQuoted(t *testing.T) {
	env := pgtest.New(t)
	b := open(t, env, Options{MaxConns: 2})
	long := "a" + strings.Repeat("b-", 19) + "c" // 40 characters
	names := []string{long, "a-b", "ab", "x-9"}
	sup, err := pgx.Connect(context.Background(), env.SuperURL)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close(context.Background())
	for _, mode := range []store.Mode{store.Schema, store.Database} {
		e := storetest.NewEnv(t, b, mode)
		for _, n := range names {
			ctx := e.Tenant(t, n)
			id := tenant.MustParse(n)
			var exists bool
			q := `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`
			want := id.StorageName()
			if mode == store.Database {
				q, want = `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, env.Prefix+id.StorageName()
			}
			if len(want) > 63 {
				t.Fatalf("%s: identifier %q is over 63 bytes", n, want)
			}
			if err := sup.QueryRow(context.Background(), q, want).Scan(&exists); err != nil || !exists {
				t.Fatalf("%s %s: %q missing (%v)", mode, n, want, err)
			}
			if err := e.Router.Tx(ctx, func(tx *store.Tx) error {
				_, _, err := tx.Put(ctx, "c", "r", []byte(`{"owner":"`+n+`"}`), store.IfMatch{})
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range names { // distinct: each reads back only its own
			ctx := tenant.WithID(context.Background(), tenant.MustParse(n))
			var page store.Page
			if err := e.Router.ReadTx(ctx, func(tx *store.Tx) error {
				var err error
				page, err = tx.List(ctx, "c", store.ListOptions{})
				return err
			}); err != nil || len(page.Items) != 1 || string(page.Items[0].Data) != `{"owner":"`+n+`"}` {
				t.Fatalf("%s %s reads %+v %v", mode, n, page.Items, err)
			}
		}
	}
}

func TestQuotingHelpers(t *testing.T) {
	if got := ident(`t_a"; DROP TABLE x; --`); got != `"t_a""; DROP TABLE x; --"` {
		t.Fatalf("ident = %s", got)
	}
	for _, bad := range []string{`a'b`, `a\b`, "a\x00b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("literal(%q) did not refuse", bad)
				}
			}()
			literal(bad)
		}()
	}
	if got := tenantCheck("t_acme_1"); got != `tenant_id = (SELECT bulkhead.tenant_in('t_acme_1'))` {
		t.Fatalf("tenantCheck = %s", got)
	}
}
