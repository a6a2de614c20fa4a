package tenanttest_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

// notesFS holds a team's migrations as a service would embed them.
var notesFS = fstest.MapFS{
	"migrations/0001_create_notes.sql":   {Data: []byte(`CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL) STRICT;`)},
	"migrations/0002_notes_by_title.sql": {Data: []byte(`CREATE INDEX notes_by_title ON notes (title);`)},
}

func TestSQLiteEnvHostsPooledAndDatabaseTenants(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	if got, want := env.Modes(), []store.Mode{store.Pooled, store.Database}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Modes() = %v, want %v", got, want)
	}
	acme := env.Tenant(t, "acme", store.Pooled)
	globex := env.Tenant(t, "globex", store.Database)
	if id, err := tenant.FromContext(acme); err != nil || id != tenant.MustParse("acme") {
		t.Fatalf("acme's context carries %v, %v", id, err)
	}
	if _, err := os.Stat(filepath.Join(env.Dir, "tenants", tenant.MustParse("globex").StorageName()+".db")); err != nil {
		t.Fatalf("globex, a database tenant, has no file of its own: %v", err)
	}
	for _, ctx := range []context.Context{acme, globex} {
		err := env.Router.Tx(ctx, func(tx *store.Tx) error {
			_, _, err := tx.Put(ctx, "notes", "n1", []byte(`{"owner":"`+tx.Tenant().String()+`"}`), store.IfMatch{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for name, ctx := range map[string]context.Context{"acme": acme, "globex": globex} {
		err := env.Router.ReadTx(ctx, func(tx *store.Tx) error {
			rec, err := tx.Get(ctx, "notes", "n1")
			if err == nil && string(rec.Data) != `{"owner":"`+name+`"}` {
				t.Errorf("%s reads %s", name, rec.Data)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Placement(context.Background(), tenant.MustParse("initech")); !errors.Is(err, store.ErrUnknownTenant) {
		t.Fatalf("a tenant the Env did not make: %v, want store.ErrUnknownTenant", err)
	}
}

func TestTenantReturnsTheSameTenantAndRefusesAnotherMode(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	ctx := env.Tenant(t, "acme", store.Database)
	err := env.Router.Tx(ctx, func(tx *store.Tx) error {
		_, _, err := tx.Put(ctx, "notes", "n1", []byte(`{}`), store.IfMatch{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	again := env.Tenant(t, "acme", store.Database)
	if err := env.Router.ReadTx(again, func(tx *store.Tx) error { _, err := tx.Get(again, "notes", "n1"); return err }); err != nil {
		t.Fatalf("asking for acme again lost its data: %v", err)
	}
	for _, tc := range []struct {
		name, tenant string
		mode         store.Mode
		want         string
	}{
		{"a tenant made in another mode", "acme", store.Pooled, "already placed in database mode"},
		{"an invalid tenant id", "Acme!", store.Pooled, "invalid tenant id"},
		{"a mode SQLite does not host", "initech", store.Schema, "isolation mode not supported"},
	} {
		t.Run(tc.name+" fails the test", func(t *testing.T) {
			r := record(t, func(tb testing.TB) { env.Tenant(tb, tc.tenant, tc.mode) })
			if !r.fatal || !r.failedWith(tc.want) {
				t.Fatalf("Tenant(%q, %s): %s; want a failure naming %q", tc.tenant, tc.mode, r, tc.want)
			}
		})
	}
}

func TestMigrationsReachDatabaseTenantsOnly(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{Migrations: tenanttest.Migrations(t, notesFS, "migrations")})
	ctx := env.Tenant(t, "acme", store.Database)
	err := sqlite.Tx(ctx, env.Router, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO notes (title) VALUES ('hello')`)
		return err
	})
	if err != nil {
		t.Fatalf("insert into the migrated table: %v", err)
	}
	var version int
	err = sqlite.ReadTx(ctx, env.Router, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&version)
	})
	if err != nil || version != 2 {
		t.Fatalf("acme's file is at version %d (%v), want 2", version, err)
	}
	pooled := env.Tenant(t, "globex", store.Pooled)
	err = sqlite.Tx(pooled, env.Router, func(*sql.Tx) error { return nil })
	if !errors.Is(err, store.ErrIsolationUnsupported) {
		t.Fatalf("own SQL for a pooled SQLite tenant: %v, want store.ErrIsolationUnsupported", err)
	}
}

func TestMigrationsProductionWouldRefuseFailTheTest(t *testing.T) {
	gap := fstest.MapFS{
		"m/0001_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)},
		"m/0003_c.sql": {Data: []byte(`CREATE TABLE c (x INTEGER);`)},
	}
	r := record(t, func(tb testing.TB) { tenanttest.Migrations(tb, gap, "m") })
	if !r.fatal || !r.failedWith("no gaps") {
		t.Fatalf("loading migrations with a gap: %s", r)
	}
	ms := tenanttest.Migrations(t, notesFS, "migrations")
	r = record(t, func(tb testing.TB) { tenanttest.New(tb, tenanttest.Options{Migrations: ms[1:]}) })
	if !r.fatal || !r.failedWith("versions start at 1") {
		t.Fatalf("New with migrations that start at 2: %s", r)
	}
}

func TestTheStoreClosesWhenTheTestEnds(t *testing.T) {
	var env *tenanttest.Env
	var ctx context.Context
	t.Run("a test that uses an Env", func(t *testing.T) {
		env = tenanttest.New(t, tenanttest.Options{})
		ctx = env.Tenant(t, "acme", store.Database)
		if err := env.Router.ReadTx(ctx, func(*store.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})
	err := env.Router.ReadTx(ctx, func(*store.Tx) error { return nil })
	if !errors.Is(err, sqlite.ErrClosed) {
		t.Fatalf("a transaction after the test ended: %v, want sqlite.ErrClosed", err)
	}
	if _, err := os.Stat(env.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the data directory outlived the test: %v", err)
	}
}

func TestPlacementErrorsReachTheCode(t *testing.T) {
	t.Run("a Placements without PlacementFunc knows no tenant", func(t *testing.T) {
		env := tenanttest.New(t, tenanttest.Options{Placements: &tenanttest.Placements{}})
		ctx := env.Tenant(t, "acme", store.Pooled)
		err := env.Router.ReadTx(ctx, func(*store.Tx) error { return nil })
		if !errors.Is(err, store.ErrUnknownTenant) {
			t.Fatalf("ReadTx = %v, want store.ErrUnknownTenant", err)
		}
	})
	t.Run("PlacementFunc fails one tenant and falls back to the Env for the others", func(t *testing.T) {
		errDown := errors.New("catalog unreachable")
		flaky := tenant.MustParse("flaky")
		var env *tenanttest.Env
		env = tenanttest.New(t, tenanttest.Options{Placements: &tenanttest.Placements{
			PlacementFunc: func(ctx context.Context, id tenant.ID) (store.Placement, error) {
				if id == flaky {
					return store.Placement{}, errDown
				}
				return env.Placement(ctx, id)
			},
		}})
		if err := env.Router.ReadTx(env.Tenant(t, "flaky", store.Pooled), func(*store.Tx) error { return nil }); !errors.Is(err, errDown) {
			t.Fatalf("flaky's ReadTx = %v, want the placement error", err)
		}
		if err := env.Router.ReadTx(env.Tenant(t, "acme", store.Database), func(*store.Tx) error { return nil }); err != nil {
			t.Fatalf("acme's ReadTx = %v", err)
		}
	})
}

func TestPostgresSkipsNamingTheVariable(t *testing.T) {
	t.Setenv(tenanttest.PostgresEnvVar, "")
	r := record(t, func(tb testing.TB) { tenanttest.Postgres(tb, tenanttest.Options{}) })
	if r.Failed() || !strings.Contains(r.skipped, "BULKHEAD_TEST_POSTGRES") {
		t.Fatalf("Postgres without %s: %s; want a skip naming it", tenanttest.PostgresEnvVar, r)
	}
}

// quotaFunc adapts a function to store.Quotas.
type quotaFunc func(ctx context.Context, id tenant.ID) (int64, int64, error)

func (f quotaFunc) StorageQuota(ctx context.Context, id tenant.ID) (int64, int64, error) {
	return f(ctx, id)
}

func TestQuotasReachTheRouter(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{Quotas: quotaFunc(func(context.Context, tenant.ID) (int64, int64, error) {
		return 1, 0, nil // one record
	})})
	for _, mode := range env.Modes() {
		ctx := env.Tenant(t, "quota-"+string(mode), mode)
		create := func() error {
			return env.Router.Tx(ctx, func(tx *store.Tx) error {
				_, err := tx.Create(ctx, "notes", []byte(`{}`))
				return err
			})
		}
		if err := create(); err != nil {
			t.Fatalf("%s: the first record: %v", mode, err)
		}
		if err := create(); !errors.Is(err, store.ErrQuotaExceeded) {
			t.Fatalf("%s: the second record: %v, want store.ErrQuotaExceeded", mode, err)
		}
	}
}
