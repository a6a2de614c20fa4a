package tenanttest_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

// recordsProbe writes and reads note n1 through the store's record API,
// and tampers by deleting and overwriting it.
func recordsProbe(router *store.Router) tenanttest.Probe {
	return tenanttest.Probe{
		Write: func(ctx context.Context) error {
			return router.Tx(ctx, func(tx *store.Tx) error {
				_, _, err := tx.Put(ctx, "notes", "n1", []byte(`{"title":"secret"}`), store.IfMatch{})
				return err
			})
		},
		Read: func(ctx context.Context) (any, error) {
			var data string
			err := router.ReadTx(ctx, func(tx *store.Tx) error {
				rec, err := tx.Get(ctx, "notes", "n1")
				data = string(rec.Data)
				return err
			})
			return data, err
		},
		Tamper: func(ctx context.Context) error {
			return router.Tx(ctx, func(tx *store.Tx) error {
				if err := tx.Delete(ctx, "notes", "n1", store.IfMatch{}); err != nil {
					return err
				}
				_, _, err := tx.Put(ctx, "notes", "n1", []byte(`{"title":"changed"}`), store.IfMatch{Any: true})
				return err
			})
		},
	}
}

// ownSQLProbe writes and reads the team's own notes table with sqlite.Tx,
// and tampers by deleting every note it can reach.
func ownSQLProbe(router *store.Router) tenanttest.Probe {
	return tenanttest.Probe{
		Write: func(ctx context.Context) error {
			return sqlite.Tx(ctx, router, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO notes (title) VALUES ('secret')`)
				return err
			})
		},
		Read: func(ctx context.Context) (any, error) {
			var titles []string
			err := sqlite.ReadTx(ctx, router, func(tx *sql.Tx) error {
				rows, err := tx.QueryContext(ctx, `SELECT title FROM notes ORDER BY id`)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var s string
					if err := rows.Scan(&s); err != nil {
						return err
					}
					titles = append(titles, s)
				}
				return rows.Err()
			})
			return titles, err
		},
		Tamper: func(ctx context.Context) error {
			return sqlite.Tx(ctx, router, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `DELETE FROM notes`)
				return err
			})
		},
	}
}

func TestIsolatedPassesCodeThatKeepsTenantsApart(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{Migrations: tenanttest.Migrations(t, notesFS, "migrations")})
	t.Run("the record API in every mode", func(t *testing.T) {
		r := record(t, func(tb testing.TB) { tenanttest.Isolated(tb, env, recordsProbe(env.Router)) })
		if r.Failed() || r.skipped != "" {
			t.Fatal(r)
		}
	})
	t.Run("own SQL in database mode", func(t *testing.T) {
		r := record(t, func(tb testing.TB) { tenanttest.Isolated(tb, env, ownSQLProbe(env.Router), store.Database) })
		if r.Failed() || r.skipped != "" {
			t.Fatal(r)
		}
	})
	t.Run("a Read that answers nothing with nil or an empty slice", func(t *testing.T) {
		p := leaks[3].probe(t, false) // the shared file's reads, fixed
		read, calls := p.Read, 0
		p.Read = func(ctx context.Context) (any, error) {
			v, err := read(ctx)
			if calls++; calls%2 == 0 && v.([]string) == nil {
				v = []string{}
			}
			return v, err
		}
		r := record(t, func(tb testing.TB) { tenanttest.Isolated(tb, env, p) })
		if r.Failed() {
			t.Fatal(r)
		}
	})
	t.Run("two tenants the test made", func(t *testing.T) {
		a, b := env.Tenant(t, "acme", store.Pooled), env.Tenant(t, "globex", store.Database)
		r := record(t, func(tb testing.TB) { tenanttest.IsolatedBetween(tb, a, b, recordsProbe(env.Router)) })
		if r.Failed() || r.skipped != "" {
			t.Fatal(r)
		}
	})
}

// noteCache is a team's in-memory cache of notes; byTenant says whether
// its keys carry the tenant, as they must.
type noteCache struct {
	byTenant bool
	mu       sync.Mutex
	m        map[string]note // guarded by mu
}

type note struct {
	owner tenant.ID
	title string
}

func (c *noteCache) key(ctx context.Context, id string) string {
	if !c.byTenant {
		return id
	}
	t, _ := tenant.FromContext(ctx)
	return t.String() + "/" + id
}

// sharedFile is a team's side table in one SQLite file for all tenants,
// outside Bulkhead: a row carries its tenant, and every statement must say
// which.
func sharedFile(t *testing.T, schema string) *sql.DB {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "shared.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(schema); err != nil {
		t.Fatal(err)
	}
	return db
}

func titles(ctx context.Context, db *sql.DB, query string, args ...any) (any, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func tenantOf(ctx context.Context) string {
	id, _ := tenant.FromContext(ctx)
	return id.String()
}

// leaks are code with a tenant leak, each beside the same code with the
// leak fixed: Isolated must fail the first with want, and pass the second.
var leaks = []struct {
	name  string
	want  string
	probe func(t *testing.T, leak bool) tenanttest.Probe
}{
	{
		name: "a cache keyed without the tenant",
		want: "sees what A",
		probe: func(t *testing.T, leak bool) tenanttest.Probe {
			c := &noteCache{byTenant: !leak, m: map[string]note{}}
			return tenanttest.Probe{
				Write: func(ctx context.Context) error {
					c.mu.Lock()
					defer c.mu.Unlock()
					c.m[c.key(ctx, "n1")] = note{title: "secret"}
					return nil
				},
				Read: func(ctx context.Context) (any, error) {
					c.mu.Lock()
					defer c.mu.Unlock()
					n, ok := c.m[c.key(ctx, "n1")]
					if !ok {
						return nil, store.ErrNotFound
					}
					return n.title, nil
				},
			}
		},
	},
	{
		name: "a cache keyed by note id that checks the owner on read only",
		want: "by running the same Write",
		probe: func(t *testing.T, leak bool) tenanttest.Probe {
			c := &noteCache{byTenant: !leak, m: map[string]note{}}
			return tenanttest.Probe{
				Write: func(ctx context.Context) error {
					id, _ := tenant.FromContext(ctx)
					c.mu.Lock()
					defer c.mu.Unlock()
					c.m[c.key(ctx, "n1")] = note{owner: id, title: "secret"}
					return nil
				},
				Read: func(ctx context.Context) (any, error) {
					id, _ := tenant.FromContext(ctx)
					c.mu.Lock()
					defer c.mu.Unlock()
					n, ok := c.m[c.key(ctx, "n1")]
					if !ok || n.owner != id {
						return nil, store.ErrNotFound
					}
					return n.title, nil
				},
			}
		},
	},
	{
		name: "a delete by id that forgets the tenant",
		want: "changed what A (",
		probe: func(t *testing.T, leak bool) tenanttest.Probe {
			db := sharedFile(t, `CREATE TABLE notes (tenant TEXT NOT NULL, id TEXT NOT NULL, title TEXT NOT NULL, PRIMARY KEY (tenant, id))`)
			return tenanttest.Probe{
				Write: func(ctx context.Context) error {
					_, err := db.ExecContext(ctx, `INSERT INTO notes VALUES (?, 'n1', 'secret')`, tenantOf(ctx))
					return err
				},
				Read: func(ctx context.Context) (any, error) {
					return titles(ctx, db, `SELECT title FROM notes WHERE tenant = ?`, tenantOf(ctx))
				},
				Tamper: func(ctx context.Context) error {
					if leak {
						_, err := db.ExecContext(ctx, `DELETE FROM notes WHERE id = 'n1'`)
						return err
					}
					_, err := db.ExecContext(ctx, `DELETE FROM notes WHERE tenant = ? AND id = 'n1'`, tenantOf(ctx))
					return err
				},
			}
		},
	},
	{
		name: "a read from a shared file that forgets the tenant",
		want: "sees what A",
		probe: func(t *testing.T, leak bool) tenanttest.Probe {
			db := sharedFile(t, `CREATE TABLE notes (tenant TEXT NOT NULL, title TEXT NOT NULL)`)
			return tenanttest.Probe{
				Write: func(ctx context.Context) error {
					_, err := db.ExecContext(ctx, `INSERT INTO notes VALUES (?, 'secret')`, tenantOf(ctx))
					return err
				},
				Read: func(ctx context.Context) (any, error) {
					if leak {
						return titles(ctx, db, `SELECT title FROM notes`)
					}
					return titles(ctx, db, `SELECT title FROM notes WHERE tenant = ?`, tenantOf(ctx))
				},
			}
		},
	},
	{
		name: "a unique title across tenants",
		want: "fails as B",
		probe: func(t *testing.T, leak bool) tenanttest.Probe {
			unique := "UNIQUE (tenant, title)"
			if leak {
				unique = "UNIQUE (title)"
			}
			db := sharedFile(t, `CREATE TABLE notes (tenant TEXT NOT NULL, title TEXT NOT NULL, `+unique+`)`)
			return tenanttest.Probe{
				Write: func(ctx context.Context) error {
					_, err := db.ExecContext(ctx, `INSERT INTO notes VALUES (?, 'secret')`, tenantOf(ctx))
					return err
				},
				Read: func(ctx context.Context) (any, error) {
					return titles(ctx, db, `SELECT title FROM notes WHERE tenant = ?`, tenantOf(ctx))
				},
			}
		},
	},
}

func TestIsolatedFailsCodeThatLeaks(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	for _, tc := range leaks {
		t.Run(tc.name+" fails the test", func(t *testing.T) {
			r := record(t, func(tb testing.TB) { tenanttest.Isolated(tb, env, tc.probe(t, true)) })
			if !r.failedWith(tc.want) {
				t.Fatalf("Isolated: %s; want a failure saying %q", r, tc.want)
			}
			t.Log(r)
		})
		t.Run(tc.name+", fixed, passes", func(t *testing.T) {
			r := record(t, func(tb testing.TB) { tenanttest.Isolated(tb, env, tc.probe(t, false)) })
			if r.Failed() {
				t.Fatalf("Isolated: %s; want no failure", r)
			}
		})
	}
}

func TestIsolatedRefusesAProbeThatProvesNothing(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	good := recordsProbe(env.Router)
	for _, tc := range []struct {
		name string
		run  func(tb testing.TB)
		want string
	}{
		{"a Write that changes nothing Read sees", func(tb testing.TB) {
			p := good
			p.Write = func(context.Context) error { return nil }
			tenanttest.Isolated(tb, env, p)
		}, "changed nothing A's Read sees"},
		{"a Write that fails", func(tb testing.TB) {
			tenanttest.Isolated(tb, env, ownSQLProbe(env.Router)) // own SQL in pooled mode
		}, "tenanttest.Isolated(t, env, probe, store.Database)"},
		{"a Probe without Read", func(tb testing.TB) {
			tenanttest.Isolated(tb, env, tenanttest.Probe{Write: good.Write})
		}, "needs Write and Read"},
		{"the same tenant twice", func(tb testing.TB) {
			ctx := env.Tenant(tb, "acme", store.Pooled)
			tenanttest.IsolatedBetween(tb, ctx, ctx, good)
		}, "the same tenant acme"},
		{"a context without a tenant", func(tb testing.TB) {
			tenanttest.IsolatedBetween(tb, env.Tenant(tb, "acme", store.Pooled), context.Background(), good)
		}, tenant.ErrMissing.Error()},
	} {
		t.Run(tc.name+" fails the test", func(t *testing.T) {
			r := record(t, tc.run)
			if !r.fatal || !r.failedWith(tc.want) {
				t.Fatalf("%s; want a fatal failure saying %q", r, tc.want)
			}
		})
	}
}

func TestIsolatedNamesTheModeThatLeaks(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	leaky := leaks[0].probe(t, true)
	r := record(t, func(tb testing.TB) { tenanttest.Isolated(tb, env, leaky, store.Database) })
	if !r.failedWith("database mode: B (isolated-") {
		t.Fatalf("%s; want the failure to name the mode and the tenants", r)
	}
	t.Run("and stops at the first mode that leaks", func(t *testing.T) {
		r := record(t, func(tb testing.TB) { tenanttest.Isolated(tb, env, leaks[0].probe(t, true)) })
		if !r.failedWith("pooled mode: ") || r.failedWith("database mode: ") {
			t.Fatalf("%s; want pooled mode's report only", r)
		}
	})
}

func TestPostgresEnvIsolatesEveryMode(t *testing.T) {
	ms := []migrate.Migration{{Version: 1, Name: "notes", SQL: `CREATE TABLE notes (
		tenant_id text NOT NULL DEFAULT current_setting('bulkhead.tenant'),
		id        uuid NOT NULL DEFAULT gen_random_uuid(),
		title     text NOT NULL,
		PRIMARY KEY (tenant_id, id))`}}
	env := tenanttest.Postgres(t, tenanttest.Options{Migrations: ms})
	if got := env.Modes(); len(got) != 3 {
		t.Fatalf("Modes() = %v, want all three", got)
	}
	t.Run("the record API", func(t *testing.T) {
		tenanttest.Isolated(t, env, recordsProbe(env.Router))
	})
	t.Run("own SQL on the migrated table", func(t *testing.T) {
		tenanttest.Isolated(t, env, tenanttest.Probe{
			Write: func(ctx context.Context) error {
				return postgres.Tx(ctx, env.Router, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, `INSERT INTO notes (title) VALUES ('secret')`)
					return err
				})
			},
			Read: func(ctx context.Context) (any, error) {
				var n int
				err := postgres.ReadTx(ctx, env.Router, func(tx pgx.Tx) error {
					return tx.QueryRow(ctx, `SELECT count(*) FROM notes`).Scan(&n)
				})
				return n, err
			},
			Tamper: func(ctx context.Context) error {
				return postgres.Tx(ctx, env.Router, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, `DELETE FROM notes`)
					return err
				})
			},
		})
	})
	if _, err := env.Placement(context.Background(), tenant.MustParse("isolated-6-b")); err != nil {
		t.Fatalf("Isolated did not make two tenants in each of three modes, twice: %v", err)
	}
	if err := env.Router.ReadTx(context.Background(), func(*store.Tx) error { return nil }); !errors.Is(err, tenant.ErrMissing) {
		t.Fatalf("a transaction without a tenant: %v", err)
	}
}
