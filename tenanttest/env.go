package tenanttest

import (
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Shard is the name of an Env's one shard, in every placement it makes.
const Shard = "test"

// Options configures an Env. The zero value is a bare store: no own
// tables, real time, the Env's own placements.
type Options struct {
	// Migrations are the team's own SQL migrations (see Migrations to load
	// them from an fs.FS). Each database-mode tenant gets them when Tenant
	// provisions it, in the transaction that creates its unit; on
	// PostgreSQL the shard's pooled tables get them when the Env opens, and
	// schema tenants at Tenant too. SQLite pooled tenants have no own
	// tables: their shared file runs no team SQL.
	Migrations []migrate.Migration
	// Placements, if set, is what the Router asks where a tenant lives,
	// instead of the Env's own record of the tenants Tenant made. Use a
	// *Placements whose PlacementFunc fails to test how code handles a
	// placement source that errs, and have it call Env.Placement to fall
	// back to the Env's record.
	Placements store.Placements
	// Now stamps records (time.Now if nil); a fixed clock makes record
	// timestamps comparable across runs.
	Now func() time.Time
	// Quotas, if set, gives the tenants' storage quotas, as limits.Resolver
	// does in production: a test of store.ErrQuotaExceeded sets it.
	Quotas store.Quotas
}

// Env is a temporary Bulkhead store for one test: a store.Router over one
// backend (shard Shard), and the tenants provisioned on it. Everything is
// closed, and on SQLite removed, when the test that made the Env ends. An
// Env is safe for concurrent use.
type Env struct {
	// Router opens transactions for the tenant in a context, as it does in
	// production: hand it to the code under test.
	Router *store.Router
	// Backend is the Router's one backend: a *sqlite.Backend from New, a
	// *postgres.Backend from Postgres.
	Backend store.Backend
	// Dir is the SQLite data directory under t.TempDir(); empty on
	// PostgreSQL.
	Dir string

	modes []store.Mode

	mu      sync.Mutex
	placed  map[tenant.ID]store.Placement // the tenants Tenant made; guarded by mu
	isoNext int                           // numbers Isolated's tenants; guarded by mu
}

// New returns an Env on SQLite: a data directory under t.TempDir(), the
// embedded backend's pooled and database modes (SQLite has no schema
// mode), and a Router whose placements are the tenants Env.Tenant makes.
// The Router and its backend are closed when t's test ends.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	if err := migrate.Check(opts.Migrations); err != nil {
		t.Fatalf("tenanttest: Options.Migrations: %v", err)
	}
	dir := t.TempDir()
	be, err := sqlite.Open(dir, sqlite.Options{Migrations: opts.Migrations})
	if err != nil {
		t.Fatalf("tenanttest: open SQLite in %s: %v", dir, err)
	}
	e := newEnv(t, be, opts)
	e.Dir = dir
	return e
}

// newEnv makes the Env's Router over be, which it closes when t's test
// ends.
func newEnv(t testing.TB, be store.Backend, opts Options) *Env {
	t.Helper()
	e := &Env{Backend: be, placed: make(map[tenant.ID]store.Placement)}
	for _, m := range []store.Mode{store.Pooled, store.Schema, store.Database} {
		if be.Supports(m) == nil {
			e.modes = append(e.modes, m)
		}
	}
	var placements store.Placements = envPlacements{e}
	if opts.Placements != nil {
		placements = opts.Placements
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	r, err := store.NewRouter(store.Config{
		Placements: placements,
		Backends:   map[string]store.Backend{Shard: be},
		CursorKey:  key,
		Now:        opts.Now,
		Quotas:     opts.Quotas,
	})
	if err != nil {
		_ = be.Close()
		t.Fatalf("tenanttest: %v", err)
	}
	e.Router = r
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("tenanttest: close the store: %v", err)
		}
	})
	return e
}

// Modes returns the isolation modes the Env's backend hosts, in the order
// pooled, schema, database: pooled and database on SQLite, all three on
// PostgreSQL.
func (e *Env) Modes() []store.Mode { return append([]store.Mode(nil), e.modes...) }

// Tenant provisions the tenant named name in mode (with the Env's
// migrations in database mode, and in schema mode on PostgreSQL) and
// returns ctx carrying it, as ingress
// middleware would: tenant.WithID(context.Background(), id). Asking again
// for a tenant already made in the same mode returns its context without
// provisioning anew. A name that is not a valid tenant ID, a mode the
// backend does not host, or a tenant already made in another mode fails t.
func (e *Env) Tenant(t testing.TB, name string, mode store.Mode) context.Context {
	t.Helper()
	id, err := tenant.Parse(name)
	if err != nil {
		t.Fatalf("tenanttest: %v", err)
	}
	p := store.Placement{Mode: mode, Shard: Shard}
	e.mu.Lock()
	defer e.mu.Unlock() // provisioning under mu keeps two calls for one name apart
	if had, ok := e.placed[id]; ok {
		if had != p {
			t.Fatalf("tenanttest: tenant %s is already placed in %s mode, not %s", id, had.Mode, mode)
		}
		return tenant.WithID(context.Background(), id)
	}
	if err := e.Router.Provision(context.Background(), id, p); err != nil {
		t.Fatalf("tenanttest: provision tenant %s in %s mode: %v", id, mode, err)
	}
	e.placed[id] = p
	return tenant.WithID(context.Background(), id)
}

// Placement returns where Tenant placed tenant id, or an error wrapping
// store.ErrUnknownTenant for a tenant it did not make. It is the Router's
// placement source unless Options.Placements replaces it.
func (e *Env) Placement(_ context.Context, id tenant.ID) (store.Placement, error) {
	e.mu.Lock()
	p, ok := e.placed[id]
	e.mu.Unlock()
	if !ok {
		return store.Placement{}, fmt.Errorf("%w %q (tenanttest: Env.Tenant did not make it)", store.ErrUnknownTenant, id)
	}
	return p, nil
}

// envPlacements is the Env's record as the Router's store.Placements.
type envPlacements struct{ e *Env }

func (p envPlacements) Placement(ctx context.Context, id tenant.ID) (store.Placement, error) {
	return p.e.Placement(ctx, id)
}

// Migrations loads the migrations in directory dir of fsys with
// migrate.LoadDir, as the team's service does, and fails t if they do not
// load:
//
//	//go:embed migrations/*.sql
//	var migrationsFS embed.FS
//
//	env := tenanttest.New(t, tenanttest.Options{Migrations: tenanttest.Migrations(t, migrationsFS, "migrations")})
func Migrations(t testing.TB, fsys fs.FS, dir string) []migrate.Migration {
	t.Helper()
	ms, err := migrate.LoadDir(fsys, dir)
	if err != nil {
		t.Fatalf("tenanttest: load migrations from %s: %v", dir, err)
	}
	return ms
}
