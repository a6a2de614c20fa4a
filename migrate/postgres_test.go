package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// pgFleet is a real PostgreSQL shard "main" with its catalog.
type pgFleet struct {
	env     pgtest.Env
	backend *postgres.Backend
	cat     *catalog.Catalog
	router  *store.Router
}

func newPGFleet(t testing.TB, maxConns int32) *pgFleet {
	t.Helper()
	env := pgtest.New(t)
	ctx := context.Background()
	b, err := postgres.Open(ctx, postgres.Shard{Name: "main", URL: env.ServeURL, AdminURL: env.AdminURL},
		postgres.Options{DatabasePrefix: env.Prefix, MaxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.OpenPostgres(ctx, b.OperatorPool(), catalog.Options{})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	r, err := store.NewRouter(store.Config{Placements: cat, Backends: map[string]store.Backend{"main": b},
		CursorKey: []byte(strings.Repeat("k", 32))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cat.Close()
		r.Close()
	})
	return &pgFleet{env: env, backend: b, cat: cat, router: r}
}

func (f *pgFleet) create(t testing.TB, id string, mode store.Mode) {
	t.Helper()
	_, err := f.cat.CreateTenant(context.Background(), catalog.Tenant{ID: tenant.MustParse(id),
		Placement: store.Placement{Mode: mode, Shard: "main"}}, f.router.Provision)
	if err != nil {
		t.Fatalf("create tenant %s: %v", id, err)
	}
}

func (f *pgFleet) plan(t testing.TB, a migrate.Applier, ms []migrate.Migration) migrate.Plan {
	t.Helper()
	units, err := f.cat.MigrationUnits(context.Background(), "main")
	if err != nil {
		t.Fatal(err)
	}
	return migrate.Plan{Units: units, Appliers: map[string]migrate.Applier{"main": a}, Migrations: ms}
}

// countingApplier passes through to the real backend and counts calls to
// Apply; versions are read through it from the units.
type countingApplier struct {
	next  migrate.Applier
	calls atomic.Int64
}

func (c *countingApplier) Apply(ctx context.Context, u migrate.Unit, ms []migrate.Migration) (int, error) {
	c.calls.Add(1)
	return c.next.Apply(ctx, u, ms)
}

func (c *countingApplier) UnitVersions(ctx context.Context, units []migrate.Unit) (map[migrate.Unit]int, error) {
	return c.next.(migrate.VersionReader).UnitVersions(ctx, units)
}

var pgMigrations = []migrate.Migration{
	{Version: 1, Name: "create_invoices", SQL: `CREATE TABLE invoices (
		tenant_id text NOT NULL DEFAULT current_setting('bulkhead.tenant'),
		id int NOT NULL, amount bigint NOT NULL, PRIMARY KEY (tenant_id, id))`},
	{Version: 2, Name: "add_note", SQL: `ALTER TABLE invoices ADD COLUMN note text`},
}

// insert adds an invoice for the tenant through the library API.
func insert(ctx context.Context, r *store.Router, id string, n int) error {
	return postgres.Tx(tenant.WithID(ctx, tenant.MustParse(id)), r, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO invoices (id, amount, note) VALUES ($1, 100, 'x')`, n)
		return err
	})
}

func TestRunOnPostgresMigratesEveryModeAndThenDoesNothing(t *testing.T) {
	f := newPGFleet(t, 4)
	ctx := context.Background()
	f.create(t, "pooled-a", store.Pooled)
	f.create(t, "schema-a", store.Schema)
	f.create(t, "schema-b", store.Schema)
	f.create(t, "db-a", store.Database)

	a := &countingApplier{next: f.backend}
	rep, err := migrate.Run(ctx, f.plan(t, a, pgMigrations))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts["migrated"] != 4 || a.calls.Load() != 4 {
		t.Fatalf("first run: counts %v, %d applies; want 4 units (pooled, 2 schema, 1 database)", rep.Counts, a.calls.Load())
	}
	for _, id := range []string{"pooled-a", "schema-a", "schema-b", "db-a"} {
		if err := insert(ctx, f.router, id, 1); err != nil {
			t.Errorf("tenant %s cannot use the migrated table: %v", id, err)
		}
	}

	a.calls.Store(0)
	rep, err = migrate.Run(ctx, f.plan(t, a, pgMigrations))
	if err != nil {
		t.Fatal(err)
	}
	if a.calls.Load() != 0 || rep.Counts["current"] != 4 {
		t.Fatalf("no-op run: %d applies, counts %v; want 0 and 4 current", a.calls.Load(), rep.Counts)
	}
	st, err := f.plan(t, a, pgMigrations).Status(ctx)
	if err != nil || st.Counts["current"] != 4 {
		t.Fatalf("Status = %v, %v", st.Counts, err)
	}
}

func TestRunOnPostgresStopsAtAFailingTenantAndLeavesOthersConsistent(t *testing.T) {
	f := newPGFleet(t, 4)
	ctx := context.Background()
	ids := []string{"acme", "bolt", "cask", "dune", "echo", "fern"}
	for _, id := range ids {
		f.create(t, id, store.Schema)
	}
	if _, err := migrate.Run(ctx, f.plan(t, f.backend, pgMigrations)); err != nil {
		t.Fatal(err)
	}
	// Version 3 fails in cask only: its schema already has the table.
	admin, err := pgx.Connect(ctx, f.env.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `CREATE TABLE t_cask.audit (x int)`); err != nil {
		t.Fatal(err)
	}
	ms := append(append([]migrate.Migration(nil), pgMigrations...),
		migrate.Migration{Version: 3, Name: "audit", SQL: `CREATE TABLE audit (tenant_id text NOT NULL, x int, PRIMARY KEY (tenant_id, x)); ALTER TABLE invoices ADD COLUMN paid bool`})
	plan := f.plan(t, f.backend, ms)
	plan.Concurrency = 2
	// Hold the tables of the tenants after cask, on a connection of its
	// own, until the run has recorded cask's failure: however fast cask
	// fails on a loaded machine, none of them can finish before it, so
	// the run must stop with some of them not started.
	locker, err := pgx.Connect(ctx, f.env.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(context.Background())
	lockTx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"dune", "echo", "fern"} {
		if _, err := lockTx.Exec(ctx, fmt.Sprintf(`LOCK TABLE %s.invoices IN ACCESS EXCLUSIVE MODE`,
			pgx.Identifier{tenant.MustParse(id).StorageName()}.Sanitize())); err != nil {
			t.Fatal(err)
		}
	}
	caskDone := make(chan struct{})
	plan.Progress = func(p migrate.Progress) { // called under the runner's lock: never block here
		if p.Done && p.Unit.Tenant.String() == "cask" {
			close(caskDone)
		}
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		select {
		case <-caskDone:
		case <-time.After(time.Minute): // cask never finished: the run fails below rather than hangs
		}
		_ = lockTx.Commit(context.Background())
	}()
	rep, err := migrate.Run(ctx, plan)
	<-released
	plan.Progress = nil
	var ue *migrate.UnitError
	if !errors.As(err, &ue) || ue.Unit.Tenant.String() != "cask" {
		t.Fatalf("Run error = %v, want a UnitError for tenant cask", err)
	}
	if !strings.Contains(err.Error(), "tenant cask") || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("error %q does not name the tenant and the cause", err)
	}
	st, err := plan.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	versions := map[migrate.Unit]int{}
	for _, s := range st.Units {
		versions[s.Unit] = s.Version
	}
	pending := 0
	for _, id := range ids {
		u := migrate.Unit{Shard: "main", Mode: store.Schema, Tenant: tenant.MustParse(id)}
		v := versions[u]
		// The version Status reads and the schema's own table agree, and
		// the schema has the column of version 3 exactly when it is at 3.
		var inUnit int
		var hasPaid bool
		if err := admin.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(max(version), 0) FROM %s.schema_migrations`,
			pgx.Identifier{u.Tenant.StorageName()}.Sanitize())).Scan(&inUnit); err != nil {
			t.Fatal(err)
		}
		if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
			WHERE table_schema = $1 AND table_name = 'invoices' AND column_name = 'paid')`, u.Tenant.StorageName()).Scan(&hasPaid); err != nil {
			t.Fatal(err)
		}
		if v != inUnit || (v == 3) != hasPaid || (v != 2 && v != 3) {
			t.Errorf("tenant %s: status version %d, schema version %d, has v3 column %v: inconsistent", id, v, inUnit, hasPaid)
		}
		if id == "cask" && v != 2 {
			t.Errorf("failed tenant cask at version %d, want 2 (its migration rolled back)", v)
		}
		if v == 2 && id != "cask" {
			pending++
		}
	}
	if pending == 0 || rep.Counts["pending"] != pending {
		t.Errorf("counts %v: after cask failed with concurrency 2, later tenants must not have started (%d at v2)", rep.Counts, pending)
	}

	// Fix the cause and run again: only the units behind are applied.
	if _, err := admin.Exec(ctx, `DROP TABLE t_cask.audit`); err != nil {
		t.Fatal(err)
	}
	rep, err = migrate.Run(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts["migrated"] != pending+1 || rep.Counts["current"] != len(ids)-pending {
		t.Fatalf("rerun counts %v, want %d migrated", rep.Counts, pending+1)
	}
}
