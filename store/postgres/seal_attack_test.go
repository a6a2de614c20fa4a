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

func TestTheSecretSettingCannotBeFoundReadOrSet(t *testing.T) {
	for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
		t.Run(string(mode), func(t *testing.T) {
			w := newWorld(t, mode, 2)
			a := w.e.Tenant(t, "tenant-a")
			w.exec(t, a, `INSERT INTO customers (id, name) VALUES ('c1', 'A')`)
			secret := w.b.key.setting
			keyHex := hex.EncodeToString(w.b.key.k)
			err := Tx(a, w.e.Router, func(tx pgx.Tx) error {
				// Nothing lists it.
				var listed string
				if err := tx.QueryRow(a, `SELECT coalesce(string_agg(name, ','), '') FROM pg_settings WHERE name LIKE 'bulkhead%'`).Scan(&listed); err != nil {
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
				var src string
				if err := tx.QueryRow(a, `SELECT string_agg(prosrc, ' ') FROM pg_proc WHERE proname IN ('enter', 'tenant_in')`).Scan(&src); err != nil {
					return err
				}
				for _, where := range []string{listed, strings.Join(all, ";"), src} {
					if strings.Contains(where, secret) || strings.Contains(where, keyHex) {
						t.Errorf("the secret setting or the key is visible to the serving role: %.200s", where)
					}
				}
				// The key and the functions that read it are the owner's.
				for _, q := range []string{`SELECT count(*) FROM bulkhead_secret.key`, `SELECT bulkhead_secret.setting()`, `SELECT bulkhead_secret.ipad()`} {
					_, err := tx.Exec(a, `SAVEPOINT s`)
					if err != nil {
						return err
					}
					if _, err := tx.Exec(a, q); !isCode(err, "42501") {
						t.Errorf("%s as the serving role: %v, want permission denied", q, err)
					}
					if _, err := tx.Exec(a, `ROLLBACK TO SAVEPOINT s`); err != nil {
						return err
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

func TestEnterRefusesForgedAndReplayedProofs(t *testing.T) {
	w := newWorld(t, store.Schema, 2)
	a := w.e.Tenant(t, "tenant-a")
	b := w.e.Tenant(t, "tenant-b")
	w.exec(t, a, `INSERT INTO customers (id, name) VALUES ('c1', 'A')`)
	w.exec(t, b, `INSERT INTO customers (id, name) VALUES ('c1', 'B')`)
	ctx := context.Background()
	srv, err := pgx.Connect(ctx, w.env.ServeURL) // another connection of the serving role
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(ctx)
	other, err := pgx.Connect(ctx, w.env.ServeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	pid := srv.PgConn().PID()
	unitA, unitB := tenant.MustParse("tenant-a").StorageName(), tenant.MustParse("tenant-b").StorageName()
	for _, c := range []struct{ name, tenant, unit, proof string }{
		{"no proof", "tenant-b", unitB, ""},
		{"A's proof for B", "tenant-b", unitB, w.b.key.proof("tenant-a", unitA, pid)},
		{"B's proof for another unit", "tenant-b", unitA, w.b.key.proof("tenant-b", unitB, pid)},
		{"B's proof for another connection", "tenant-b", unitB, w.b.key.proof("tenant-b", unitB, other.PgConn().PID())},
		{"B's proof under another key", "tenant-b", unitB, newSealKey(make([]byte, 32)).proof("tenant-b", unitB, pid)},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := pgx.BeginFunc(ctx, srv, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, sqlEnter, c.tenant, c.unit, c.proof, false); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `SELECT 1`)
				return err
			})
			if !isCode(err, "42501") || !strings.Contains(err.Error(), "proof does not verify") {
				t.Fatalf("enter with %s: %v, want it refused", c.name, err)
			}
		})
	}
	// Everything a tenant's transaction can see of its context, replayed
	// in a transaction on another connection, opens nothing.
	var setting, path string
	err = Tx(a, w.e.Router, func(tx pgx.Tx) error {
		return tx.QueryRow(a, `SELECT current_setting('bulkhead.tenant'), current_setting('search_path')`).Scan(&setting, &path)
	})
	if err != nil || setting != "tenant-a" {
		t.Fatalf("tenant-a's context: %q, %q, %v", setting, path, err)
	}
	err = pgx.BeginFunc(ctx, srv, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('bulkhead.tenant', $1, true), set_config('search_path', $2, true)`, setting, path); err != nil {
			return err
		}
		got, err := owners(ctx, tx)
		if len(got) != 0 {
			t.Errorf("a replayed context sees %v", got)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
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
	cat, err := catalog.OpenPostgres(ctx, w.b.AdminPool(), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	lg, err := audit.OpenPostgres(ctx, w.b.AdminPool())
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
					if _, err := tx.Exec(ctx, `SAVEPOINT s`); err != nil {
						return err
					}
					if _, err := tx.Exec(ctx, s); err != nil {
						if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT s`); err != nil {
							return err
						}
						continue
					}
					for _, q := range []string{`SELECT name FROM customers`, `SELECT name FROM ` + vunit + `.customers`, `SELECT name FROM bulkhead.customers`} {
						if _, err := tx.Exec(ctx, `SAVEPOINT q`); err != nil {
							return err
						}
						rows, err := tx.Query(ctx, q)
						var got []string
						if err == nil {
							got, err = pgx.CollectRows(rows, pgx.RowTo[string])
						}
						if err != nil {
							if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT q`); err != nil {
								return err
							}
							continue
						}
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
