package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// These tests attack the sealed tenant (seal.go) from inside a tenant's own
// transaction, as SQL injected into a team's handler would; the own-SQL
// conformance suite (ownsql_conformance_test.go) runs the attacks every
// engine must survive. Each is one that main before the seal failed.

// owners returns the tenant_ids visible in customers, no predicate.
func owners(ctx context.Context, tx pgx.Tx) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT DISTINCT tenant_id FROM customers ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func TestTheSecretSettingCannotBeFoundOrRead(t *testing.T) {
	for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
		t.Run(string(mode), func(t *testing.T) {
			w := newWorld(t, mode, 2)
			a := w.e.Tenant(t, "tenant-a")
			w.exec(t, a, `INSERT INTO customers (id, name) VALUES ('c1', 'A')`)
			secret := w.b.secret
			err := Tx(a, w.e.Router, func(tx pgx.Tx) error {
				var listed, activity string
				if err := tx.QueryRow(a, `SELECT coalesce(string_agg(name || '=' || setting, ','), '') FROM pg_settings`).Scan(&listed); err != nil {
					return err
				}
				if err := tx.QueryRow(a, `SELECT coalesce(string_agg(query, ';'), '') FROM pg_stat_activity`).Scan(&activity); err != nil {
					return err
				}
				rows, err := tx.Query(a, `SHOW ALL`)
				if err != nil {
					return err
				}
				all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
					var n, v, d string
					err := r.Scan(&n, &v, &d)
					return n + "=" + v, err
				})
				if err != nil {
					return err
				}
				var src, statements string
				if err := tx.QueryRow(a, `SELECT string_agg(prosrc, ' ') FROM pg_proc WHERE pronamespace::regnamespace::text LIKE 'bulkhead%'`).Scan(&src); err != nil {
					return err
				}
				if err := tx.QueryRow(a, `SELECT string_agg(statement, ';') FROM pg_prepared_statements`).Scan(&statements); err != nil {
					return err
				}
				for _, where := range []string{listed, activity, strings.Join(all, ";"), src, statements} {
					if strings.Contains(where, secret) || strings.Contains(where, strings.TrimPrefix(secret, "bulkhead.")) {
						t.Errorf("the secret setting's name is visible to the serving role: %.200s", where)
					}
				}
				// The name and the function that reads it are the owner's.
				for _, q := range []string{`SELECT name FROM bulkhead_secret.setting`, `SELECT bulkhead_secret.name()`} {
					if err := attempt(a, tx, q); !isCode(err, "42501") {
						t.Errorf("%s as the serving role: %v, want permission denied", q, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestForgingTheTenantNeedsTheSecretName(t *testing.T) {
	w := newWorld(t, store.Schema, 2)
	a := w.e.Tenant(t, "tenant-a")
	b := w.e.Tenant(t, "tenant-b")
	w.exec(t, a, `INSERT INTO customers (id, name) VALUES ('c1', 'A')`)
	w.exec(t, b, `INSERT INTO customers (id, name) VALUES ('c1', 'B')`)
	ctx := context.Background()
	// Everything tenant-a's transaction can see of its context.
	var settings [][2]string
	err := Tx(a, w.e.Router, func(tx pgx.Tx) error {
		rows, err := tx.Query(a, `SELECT name, setting FROM pg_settings WHERE context = 'user'
			UNION ALL SELECT 'bulkhead.tenant', current_setting('bulkhead.tenant')`)
		if err != nil {
			return err
		}
		settings, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
			var kv [2]string
			err := r.Scan(&kv[0], &kv[1])
			return kv, err
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pgx.Connect(ctx, w.env.ServeURL) // another connection of the serving role
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(ctx)
	unitB := tenant.MustParse("tenant-b").StorageName()
	var guess [16]byte
	see := func(name string, forge func(tx pgx.Tx) error) []string {
		t.Helper()
		var got []string
		err := pgx.BeginFunc(ctx, srv, func(tx pgx.Tx) error {
			if err := forge(tx); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, unitB); err != nil {
				return err
			}
			var err error
			got, err = owners(ctx, tx)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return got
	}
	for _, c := range []struct {
		name  string
		forge func(tx pgx.Tx) error
	}{
		{"tenant-a's whole visible context, replayed", func(tx pgx.Tx) error {
			for _, kv := range settings {
				_ = attempt(ctx, tx, `SELECT set_config($1, $2, true)`, kv[0], kv[1]) // some settings refuse; the rest are set
			}
			return nil
		}},
		{"bulkhead.tenant set to tenant-b", func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SELECT set_config('bulkhead.tenant', 'tenant-b', true)`)
			return err
		}},
		{"a guessed secret name", func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SELECT set_config($1, $2, true)`, "bulkhead.t_"+hex.EncodeToString(guess[:]), unitB+":tenant-b")
			return err
		}},
		{"tenant_in called directly", func(tx pgx.Tx) error {
			var got *string
			if err := tx.QueryRow(ctx, `SELECT bulkhead.tenant_in($1)`, unitB).Scan(&got); err != nil || got != nil {
				return errors.Join(err, errors.New("tenant_in returned a tenant"))
			}
			return nil
		}},
	} {
		if got := see(c.name, c.forge); len(got) != 0 {
			t.Errorf("%s: sees %v", c.name, got)
		}
	}
	// The control: with the name, the same connection sees tenant-b, so the
	// cases above would have shown a forgery.
	got := see("the real name", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sqlSeal, w.b.sealArgs("tenant-b", unitB, false)...)
		return err
	})
	if !slices.Equal(got, []string{"tenant-b"}) {
		t.Fatalf("with the secret name, the serving role sees %v, want [tenant-b]", got)
	}
}

func TestStatementsCannotBeHijackedAcrossTenants(t *testing.T) {
	for _, mode := range []store.Mode{store.Pooled, store.Schema} {
		t.Run(string(mode), func(t *testing.T) {
			w := newWorld(t, mode, 1) // one connection: B's session is A's next
			a, b := w.e.Tenant(t, "tenant-a"), w.e.Tenant(t, "tenant-b")
			w.exec(t, a, `INSERT INTO customers (id, name) VALUES ('c1', 'A')`)
			w.exec(t, b, `INSERT INTO customers (id, name) VALUES ('c1', 'B')`)
			const read = `SELECT name FROM customers WHERE id = $1`
			readName := func(ctx context.Context) (string, error) {
				var name string
				err := ReadTx(ctx, w.e.Router, func(tx pgx.Tx) error { return tx.QueryRow(ctx, read, "c1").Scan(&name) })
				return name, err
			}
			if got, err := readName(a); err != nil || got != "A" {
				t.Fatalf("A reads %q, %v", got, err)
			}
			// B's SQL lists the connection's prepared statements and tries
			// to put its own in place of A's: PREPARE and DEALLOCATE are
			// refused, and so are DO blocks that would run them.
			var names []string
			err := Tx(b, w.e.Router, func(tx pgx.Tx) error {
				rows, err := tx.Query(b, `SELECT name FROM pg_prepared_statements`)
				if err != nil {
					return err
				}
				names, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err
			})
			if err != nil || len(names) == 0 {
				t.Fatalf("prepared statements %v, %v", names, err)
			}
			for _, n := range names {
				q := pgx.Identifier{n}.Sanitize()
				for _, stmt := range []string{
					`DEALLOCATE ` + q,
					`DEALLOCATE ALL`,
					`/* hidden */ deallocate prepare ` + q,
					`PREPARE ` + q + `(text) AS SELECT 'pwned'::text WHERE $1 IS NOT NULL`,
					`DISCARD ALL`,
					`COMMIT`,
				} {
					err := Tx(b, w.e.Router, func(tx pgx.Tx) error {
						_, err := tx.Exec(b, stmt)
						return err
					})
					if !errors.Is(err, ErrStatementRefused) {
						t.Errorf("%s: %v, want ErrStatementRefused", stmt, err)
					}
				}
				err := Tx(b, w.e.Router, func(tx pgx.Tx) error {
					_, err := tx.Exec(b, `DO $$BEGIN EXECUTE 'DEALLOCATE `+strings.ReplaceAll(q, `'`, `''`)+`'; EXECUTE 'PREPARE `+strings.ReplaceAll(q, `'`, `''`)+` AS SELECT 1'; END$$`)
					return err
				})
				if !isCode(err, "42501") {
					t.Errorf("a DO block that replaces %s: %v, want permission denied", n, err)
				}
				break // one statement shows it; each case costs a transaction
			}
			if got, err := readName(a); err != nil || got != "A" {
				t.Fatalf("after B's attempts, A reads %q, %v", got, err)
			}
			// Were a statement dropped anyway (DEALLOCATE ALL in a function
			// a team wrote), the next transaction moves to a fresh
			// connection and reads its own row.
			conn, err := w.b.serve.Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(context.Background(), `DEALLOCATE ALL`); err != nil {
				t.Fatal(err)
			}
			conn.Release()
			if got, err := readName(a); err != nil || got != "A" {
				t.Fatalf("after DEALLOCATE ALL, A reads %q, %v", got, err)
			}
			if rec, err := storetestGet(w, a); err != nil || rec != "{}" {
				t.Fatalf("after DEALLOCATE ALL, A's records: %q, %v", rec, err)
			}
		})
	}
}

// storetestGet puts and gets a record as the tenant in ctx.
func storetestGet(w *world, ctx context.Context) (string, error) {
	if err := w.e.Router.Tx(ctx, func(tx *store.Tx) error {
		_, _, err := tx.Put(ctx, "c", "r", []byte(`{}`), store.IfMatch{})
		return err
	}); err != nil {
		return "", err
	}
	var data string
	err := w.e.Router.ReadTx(ctx, func(tx *store.Tx) error {
		rec, err := tx.Get(ctx, "c", "r")
		data = string(rec.Data)
		return err
	})
	return data, err
}

func TestServingRoleCanCreateNothing(t *testing.T) {
	w := newWorld(t, store.Pooled, 2)
	a := w.e.Tenant(t, "tenant-a")
	for _, stmt := range []string{
		`CREATE TEMP TABLE customers (tenant_id text, id text, name text)`,
		`CREATE FUNCTION pg_temp.current_setting(text, boolean) RETURNS text LANGUAGE sql AS $$SELECT 'tenant-b'$$`,
		`CREATE TABLE public.loot (x text)`,
		`CREATE TABLE bulkhead.loot (x text)`,
		`CREATE SCHEMA loot`,
	} {
		err := Tx(a, w.e.Router, func(tx pgx.Tx) error {
			_, err := tx.Exec(a, stmt)
			return err
		})
		if !isCode(err, "42501") {
			t.Errorf("%s: %v, want permission denied", stmt, err)
		}
	}
	// CheckServingRole reports a role that could.
	sup := w.super(t)
	ctx := context.Background()
	serving := pgx.Identifier{w.env.Serving}.Sanitize()
	for _, c := range []struct{ grant, revoke, want string }{
		{`GRANT TEMPORARY ON DATABASE ` + pgx.Identifier{w.env.DB}.Sanitize() + ` TO ` + serving, `REVOKE TEMPORARY ON DATABASE ` + pgx.Identifier{w.env.DB}.Sanitize() + ` FROM ` + serving, "temporary"},
		{`GRANT CREATE ON SCHEMA public TO ` + serving, `REVOKE CREATE ON SCHEMA public FROM ` + serving, "create objects in schema public"},
		{`GRANT USAGE ON LANGUAGE plpgsql TO PUBLIC`, `REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC`, "DO blocks in plpgsql"},
	} {
		if _, err := sup.Exec(ctx, c.grant); err != nil {
			t.Fatal(err)
		}
		if err := w.b.CheckServingRole(ctx); !errors.Is(err, ErrUnsafeServingRole) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("after %s: CheckServingRole = %v", c.grant, err)
		}
		if _, err := sup.Exec(ctx, c.revoke); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.b.CheckServingRole(ctx); err != nil {
		t.Fatalf("CheckServingRole after the repairs: %v", err)
	}
}

func TestCatalogAndAuditAreOutOfReach(t *testing.T) {
	w := newWorld(t, store.Pooled, 2)
	ctx := context.Background()
	cat, err := catalog.OpenPostgres(ctx, w.b.OperatorPool(), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	lg, err := audit.OpenPostgres(ctx, w.b.OperatorPool())
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	a := w.e.Tenant(t, "tenant-a")
	for _, q := range []string{
		`SELECT count(*) FROM bulkhead_catalog.tenants`,
		`SELECT count(*) FROM bulkhead_catalog.api_keys`,
		`SELECT count(*) FROM bulkhead_audit.entries`,
		`SELECT count(*) FROM bulkhead.schema_migrations`,
	} {
		err := ReadTx(a, w.e.Router, func(tx pgx.Tx) error {
			_, err := tx.Exec(a, q)
			return err
		})
		if !isCode(err, "42501") {
			t.Errorf("%s from a tenant transaction: %v, want permission denied", q, err)
		}
	}
}

func TestOneRouterAttackedInAllThreeModes(t *testing.T) {
	w := newWorld(t, store.Pooled, 2)
	places := []store.Placement{{Mode: store.Pooled, Shard: storetest.Shard}, {Mode: store.Schema, Shard: storetest.Shard}, {Mode: store.Database, Shard: storetest.Shard}}
	e := storetest.NewMixedEnv(t, map[string]store.Backend{storetest.Shard: w.b}, places)
	names := []string{"pooled-a", "schema-a", "database-a", "pooled-b", "schema-b", "database-b"}
	ctxs := make(map[string]context.Context)
	for _, n := range names {
		ctxs[n] = e.Tenant(t, n)
		n := n
		if err := Tx(ctxs[n], e.Router, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctxs[n], `INSERT INTO customers (id, name) VALUES ('c1', $1)`, n)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, attacker := range names {
		for _, victim := range names {
			if attacker == victim {
				continue
			}
			vid := tenant.MustParse(victim)
			ctx := ctxs[attacker]
			vunit := vid.StorageName()
			steps := []string{
				`SELECT set_config('bulkhead.tenant', '` + victim + `', true)`,
				`SET LOCAL bulkhead.tenant = '` + victim + `'`,
				`SET bulkhead.tenant = '` + victim + `'`,
				`RESET ALL`,
				`SET LOCAL search_path = ` + vunit + `, bulkhead`,
				`SET ROLE ` + pgx.Identifier{w.env.Owner}.Sanitize(),
			}
			err := Tx(ctx, e.Router, func(tx pgx.Tx) error {
				for _, s := range steps {
					if attempt(ctx, tx, s) != nil {
						continue
					}
					for _, q := range []string{`SELECT name FROM customers`, `SELECT name FROM ` + vunit + `.customers`, `SELECT name FROM bulkhead.customers`} {
						var got []string
						_ = pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error { // a failing read rolls back to here
							rows, err := sp.Query(ctx, q)
							if err == nil {
								got, err = pgx.CollectRows(rows, pgx.RowTo[string])
							}
							return err
						})
						if slices.ContainsFunc(got, func(n string) bool { return n != attacker }) {
							t.Errorf("%s, after %s, %s: sees %v", attacker, s, q, got)
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%s attacking %s: %v", attacker, victim, err)
			}
		}
	}
}

func TestReadTxCannotBeMadeWritable(t *testing.T) {
	for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
		t.Run(string(mode), func(t *testing.T) {
			w := newWorld(t, mode, 1)
			a := w.e.Tenant(t, "tenant-a")
			for _, undo := range []string{
				`SET transaction_read_only = off`,
				`SET LOCAL transaction_read_only = off`,
				`RESET transaction_read_only`,
				`SELECT set_config('transaction_read_only', 'off', true)`,
				`SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE`,
				`RESET ALL`,
			} {
				err := ReadTx(a, w.e.Router, func(tx pgx.Tx) error {
					_, _ = tx.Exec(a, undo) // may fail; the write below must fail either way
					_, err := tx.Exec(a, `INSERT INTO customers (tenant_id, id, name) VALUES ('tenant-a', 'x', 'written')`)
					return err
				})
				if err == nil {
					t.Errorf("after %s, a read-only transaction wrote", undo)
				}
			}
			var n int
			if err := ReadTx(a, w.e.Router, func(tx pgx.Tx) error {
				return tx.QueryRow(a, `SELECT count(*) FROM customers`).Scan(&n)
			}); err != nil || n != 0 {
				t.Fatalf("customers after the attempts: %d, %v", n, err)
			}
		})
	}
}

// Should a connection lose Bulkhead's prepared statements anyway (team SQL
// cannot drop them; a function a team wrote could), reads heal: at most one
// fails, and the connection is replaced.
func TestReadsHealAConnectionThatLostItsStatements(t *testing.T) {
	w := newWorld(t, store.Pooled, 1)
	a := w.e.Tenant(t, "tenant-a")
	if _, err := storetestGet(w, a); err != nil {
		t.Fatal(err)
	}
	conn, err := w.b.serve.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), `DEALLOCATE ALL`); err != nil {
		t.Fatal(err)
	}
	conn.Release()
	get := func() error {
		return w.e.Router.ReadTx(a, func(tx *store.Tx) error {
			_, err := tx.Get(a, "c", "r")
			return err
		})
	}
	if err := get(); err != nil && !isCode(err, "26000") {
		t.Fatalf("first read after DEALLOCATE ALL: %v", err)
	}
	if err := get(); err != nil {
		t.Fatalf("second read after DEALLOCATE ALL: %v", err)
	}
}
