package tenanttest_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

// A team's test of its own notes code: the notes live in each database
// tenant's own SQLite file, created by the team's migrations. Isolated
// runs the same Write and Read as two new tenants.
func ExampleIsolated() {
	migrationsFS := fstest.MapFS{ // usually the service's embed.FS
		"migrations/0001_notes.sql": {Data: []byte(`CREATE TABLE notes (title TEXT NOT NULL) STRICT`)},
	}
	testNotesAreIsolated := func(t *testing.T) {
		env := tenanttest.New(t, tenanttest.Options{
			Migrations: tenanttest.Migrations(t, migrationsFS, "migrations"),
		})
		tenanttest.Isolated(t, env, tenanttest.Probe{
			Write: func(ctx context.Context) error {
				return sqlite.Tx(ctx, env.Router, func(tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, `INSERT INTO notes (title) VALUES ('secret')`)
					return err
				})
			},
			Read: func(ctx context.Context) (any, error) {
				var n int
				err := sqlite.ReadTx(ctx, env.Router, func(tx *sql.Tx) error {
					return tx.QueryRowContext(ctx, `SELECT count(*) FROM notes`).Scan(&n)
				})
				return n, err
			},
		}, store.Database) // own SQL runs in database mode on SQLite
	}
	_ = testNotesAreIsolated // a func TestNotesAreIsolated(t *testing.T) in the team's _test.go file
}

// What Isolated reports about a cache keyed by note id alone: tenant B
// reads the note tenant A wrote.
func ExampleIsolated_leak() {
	t := newPrinter() // prints what a *testing.T would report
	defer t.cleanup()

	env := tenanttest.New(t, tenanttest.Options{})
	var mu sync.Mutex
	cache := map[string]string{} // the bug: the key has no tenant
	tenanttest.Isolated(t, env, tenanttest.Probe{
		Write: func(ctx context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			cache["n1"] = "secret"
			return nil
		},
		Read: func(ctx context.Context) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			if v, ok := cache["n1"]; ok {
				return v, nil
			}
			return nil, store.ErrNotFound
		},
	}, store.Pooled)
	// Output:
	// tenanttest: pooled mode: B (isolated-1-b) sees what A (isolated-1-a) wrote: B read error "record not found" before A's Write and "secret" after
}

// Env.Tenant provisions a tenant and returns the context ingress would
// hand a handler; the Router is the store the code under test gets.
func ExampleEnv_Tenant() {
	t := newPrinter()
	defer t.cleanup()

	env := tenanttest.New(t, tenanttest.Options{})
	ctx := env.Tenant(t, "acme", store.Database)
	id, _ := tenant.FromContext(ctx)
	err := env.Router.Tx(ctx, func(tx *store.Tx) error {
		_, err := tx.Create(ctx, "notes", []byte(`{"title":"hello"}`))
		return err
	})
	fmt.Println(id, err, env.Modes())
	// Output: acme <nil> [pooled database]
}

// A placement source that fails for one tenant, to see what the code
// does when the catalog errs; the other tenants fall back to the Env.
func ExamplePlacements() {
	t := newPrinter()
	defer t.cleanup()

	errDown := errors.New("catalog unreachable")
	var env *tenanttest.Env
	env = tenanttest.New(t, tenanttest.Options{Placements: &tenanttest.Placements{
		PlacementFunc: func(ctx context.Context, id tenant.ID) (store.Placement, error) {
			if id.String() == "flaky" {
				return store.Placement{}, errDown
			}
			return env.Placement(ctx, id)
		},
	}})
	for _, name := range []string{"flaky", "steady"} {
		ctx := env.Tenant(t, name, store.Pooled)
		err := env.Router.ReadTx(ctx, func(*store.Tx) error { return nil })
		fmt.Println(name, err)
	}
	// Output:
	// flaky catalog unreachable
	// steady <nil>
}

// printer is the least of a testing.TB for runnable examples: it prints
// failures and runs cleanups when the example ends.
type printer struct {
	testing.TB
	cleanups []func()
}

func newPrinter() *printer { return &printer{} }

func (p *printer) Helper()                           {}
func (p *printer) Logf(string, ...any)               {}
func (p *printer) Errorf(format string, args ...any) { fmt.Printf(format+"\n", args...) }
func (p *printer) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (p *printer) Cleanup(f func())                  { p.cleanups = append(p.cleanups, f) }

func (p *printer) TempDir() string {
	dir, err := os.MkdirTemp("", "tenanttest-example")
	if err != nil {
		p.Fatalf("%v", err)
	}
	p.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (p *printer) cleanup() {
	for i := len(p.cleanups) - 1; i >= 0; i-- {
		p.cleanups[i]()
	}
}
