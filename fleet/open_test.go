package fleet_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func TestOpenSQLiteOpensTheCatalogAndTheShardInTheDataDirectory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f, err := fleet.OpenSQLite(ctx, dir, fleet.OpenOptions{Migrations: notes})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Shards(); !slices.Equal(got, []string{fleet.SQLiteShard}) {
		t.Fatalf("shards %v, want [%s]", got, fleet.SQLiteShard)
	}
	if _, err := f.Create(ctx, fleet.Spec{ID: "acme", Isolation: new("database")}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Catalog().Tenant(ctx, tenant.MustParse("acme")); err != nil || got.State != catalog.Active {
		t.Fatalf("the catalog has %+v (%v), want acme active", got, err)
	}
	if err := addNote(ctx, f, "acme", "hello"); err != nil {
		t.Fatalf("the tenant's migrated table is not there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, fleet.SQLiteCatalogFile)); err != nil {
		t.Fatalf("the catalog is not where bulkhead serve keeps it: %v", err)
	}
}

func TestClosingAnOpenedSQLiteFleetClosesTheCatalogAndReleasesTheDirectory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f, err := fleet.OpenSQLite(ctx, dir, fleet.OpenOptions{Migrations: notes})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Create(ctx, fleet.Spec{ID: "acme", Isolation: new("database")}); err != nil {
		t.Fatal(err)
	}
	if err := addNote(ctx, f, "acme", "kept"); err != nil {
		t.Fatal(err)
	}
	if again, err := fleet.OpenSQLite(ctx, dir, fleet.OpenOptions{}); err == nil {
		again.Close()
		t.Fatal("a second fleet opened the directory an open fleet holds")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Catalog().Ping(ctx); err == nil {
		t.Error("the catalog still answers after Close")
	}
	if err := addNote(ctx, f, "acme", "late"); err == nil {
		t.Error("the router still serves after Close")
	}
	if err := f.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	reopened, err := fleet.OpenSQLite(ctx, dir, fleet.OpenOptions{Migrations: notes})
	if err != nil {
		t.Fatalf("the directory is still held after Close: %v", err)
	}
	defer reopened.Close()
	if n, err := countNotes(ctx, reopened, "acme"); err != nil || n != 1 {
		t.Fatalf("after reopening acme has %d notes (%v), want 1", n, err)
	}
}

func TestOpenSQLiteClosesWhatItOpenedWhenItFails(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// A directory where the catalog's file should be: the catalog cannot
	// open, after the backend has locked dir.
	if err := os.Mkdir(filepath.Join(dir, fleet.SQLiteCatalogFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if f, err := fleet.OpenSQLite(ctx, dir, fleet.OpenOptions{}); err == nil {
		f.Close()
		t.Fatal("OpenSQLite succeeded without a catalog")
	}
	if err := os.Remove(filepath.Join(dir, fleet.SQLiteCatalogFile)); err != nil {
		t.Fatal(err)
	}
	f, err := fleet.OpenSQLite(ctx, dir, fleet.OpenOptions{})
	if err != nil {
		t.Fatalf("the failed open left the directory locked: %v", err)
	}
	f.Close()
}

func TestOpenSQLiteRefusesPostgresSettings(t *testing.T) {
	for name, opts := range map[string]fleet.OpenOptions{
		"MaxConns":       {MaxConns: 4},
		"DatabasePrefix": {DatabasePrefix: "bh_"},
	} {
		t.Run(name, func(t *testing.T) {
			f, err := fleet.OpenSQLite(context.Background(), t.TempDir(), opts)
			if err == nil {
				f.Close()
				t.Fatal("OpenSQLite accepted a PostgreSQL setting")
			}
		})
	}
}

func TestOpenPostgresServesEveryModeThroughItsCatalogAndRouter(t *testing.T) {
	env := pgtest.New(t)
	ctx := context.Background()
	f := openPostgres(t, env, invoices)
	if f.Catalog() == nil {
		t.Fatal("Catalog() is nil")
	}
	for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
		id := "open-" + string(mode)
		if _, err := f.Create(ctx, fleet.Spec{ID: id, Isolation: new(string(mode))}); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if got, err := f.Catalog().Tenant(ctx, tenant.MustParse(id)); err != nil || got.Placement.Mode != mode {
			t.Fatalf("%s: the catalog has %+v (%v)", mode, got, err)
		}
		// The pooled table was migrated when the shard opened, the others
		// when their tenant was created.
		if err := addInvoice(ctx, f.Fleet, id, 1); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
	}
}

// sessions counts the sessions env's two roles have open on the server.
// With settle it waits up to ten seconds for the count to reach zero: a
// closed pool's sessions leave pg_stat_activity shortly after.
func sessions(t *testing.T, env pgtest.Env, settle bool) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, env.SuperURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE usename = ANY($1)`,
			[]string{env.Owner, env.Serving}).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if !settle || n == 0 || time.Now().After(deadline) {
			return n
		}
	}
}

func TestOpenPostgresRefusesAnUnsafeServingRoleAndLeavesNothingOpen(t *testing.T) {
	env := pgtest.New(t)
	// The owner role as the serving role: it owns the tables, so
	// row-level security would not hold for it.
	f, err := fleet.OpenPostgres(context.Background(), postgres.Shard{Name: "main", URL: env.AdminURL, AdminURL: env.AdminURL},
		fleet.OpenOptions{Migrations: invoices, DatabasePrefix: env.Prefix, MaxConns: 2})
	if err == nil {
		f.Close()
		t.Fatal("OpenPostgres accepted the owner role as the serving role")
	}
	if !errors.Is(err, postgres.ErrUnsafeServingRole) {
		t.Fatalf("OpenPostgres: %v, want postgres.ErrUnsafeServingRole", err)
	}
	if n := sessions(t, env, true); n != 0 {
		t.Fatalf("the refused open left %d connections open", n)
	}
}

func TestClosingAnOpenedPostgresFleetClosesTheCatalogAndEveryPool(t *testing.T) {
	env := pgtest.New(t)
	ctx := context.Background()
	f, err := fleet.OpenPostgres(ctx, postgres.Shard{Name: "main", URL: env.ServeURL, AdminURL: env.AdminURL},
		fleet.OpenOptions{Migrations: invoices, DatabasePrefix: env.Prefix, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []store.Mode{store.Pooled, store.Database} {
		id := "close-" + string(mode)
		if _, err := f.Create(ctx, fleet.Spec{ID: id, Isolation: new(string(mode))}); err != nil {
			t.Fatal(err)
		}
		if err := addInvoice(ctx, f, id, 1); err != nil { // opens the tenant database's pool
			t.Fatal(err)
		}
	}
	if n := sessions(t, env, false); n == 0 {
		t.Fatal("no connections while the fleet is open: the count proves nothing")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Catalog().Ping(ctx); err == nil {
		t.Error("the catalog still answers after Close")
	}
	if n := sessions(t, env, true); n != 0 {
		t.Fatalf("%d connections are still open after Close", n)
	}
}
