package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// invoices are the team migrations the PostgreSQL tests apply: a pooled
// table gets row-level security from its tenant_id column.
var invoices = []migrate.Migration{
	{Version: 1, Name: "create_invoices", SQL: `CREATE TABLE invoices (
		tenant_id text NOT NULL DEFAULT current_setting('bulkhead.tenant'),
		id uuid NOT NULL DEFAULT gen_random_uuid(), amount bigint NOT NULL, PRIMARY KEY (tenant_id, id))`},
	{Version: 2, Name: "invoices_by_amount", SQL: `CREATE INDEX invoices_by_amount ON invoices (tenant_id, amount)`},
}

// pgFleet is a fleet on one PostgreSQL shard "main" of a throwaway
// database (pgtest skips the test without BULKHEAD_TEST_POSTGRES), opened
// as a service opens it.
type pgFleet struct {
	*fleet.Fleet
}

func openPostgres(t *testing.T, env pgtest.Env, ms []migrate.Migration) *pgFleet {
	t.Helper()
	f, err := fleet.OpenPostgres(context.Background(), postgres.Shard{Name: "main", URL: env.ServeURL, AdminURL: env.AdminURL},
		fleet.OpenOptions{Migrations: ms, DatabasePrefix: env.Prefix, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &pgFleet{Fleet: f}
}

// addInvoice writes an invoice as tenant id with the team's own SQL.
func addInvoice(ctx context.Context, f *fleet.Fleet, id string, amount int) error {
	return postgres.Tx(tenant.WithID(ctx, tenant.MustParse(id)), f.Router(), func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO invoices (amount) VALUES ($1)`, amount)
		return err
	})
}

func countInvoices(ctx context.Context, f *fleet.Fleet, id string) (int, error) {
	var n int
	err := postgres.ReadTx(tenant.WithID(ctx, tenant.MustParse(id)), f.Router(), func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM invoices`).Scan(&n)
	})
	return n, err
}

func TestCreateAppliesAndRecordsMigrationsOnPostgres(t *testing.T) {
	env := pgtest.New(t)
	ctx := context.Background()
	f := openPostgres(t, env, invoices)
	// The shard's pooled tables: migrated by a fleet run (or by the
	// backend when it opens with postgres.Options.Migrations).
	if _, err := f.Migrate(ctx, fleet.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
		t.Run(string(mode), func(t *testing.T) {
			id := "t-" + string(mode)
			if _, err := f.Create(ctx, fleet.Spec{ID: id, Isolation: new(string(mode))}); err != nil {
				t.Fatal(err)
			}
			unit := "main/pooled"
			if mode != store.Pooled {
				unit = fmt.Sprintf("main/%s/%s", mode, id)
			}
			if s := status(t, f.Fleet, id); s.Unit != unit || s.Version != 2 || s.Pending != 0 {
				t.Fatalf("status %+v, want %s at version 2", s, unit)
			}
			if err := addInvoice(ctx, f.Fleet, id, 100); err != nil {
				t.Fatalf("the migrated table is not there: %v", err)
			}
		})
	}
	t.Run("a fleet run finds every unit current", func(t *testing.T) {
		rep, err := f.Migrate(ctx, fleet.MigrateOptions{})
		if err != nil || len(rep.Units) != 3 || rep.Counts[migrate.StateCurrent] != 3 {
			t.Fatalf("run: %v, %v %+v", err, rep.Counts, rep.Units)
		}
	})
	t.Run("tenants see only their own rows", func(t *testing.T) {
		if err := addInvoice(ctx, f.Fleet, "t-pooled", 200); err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]int{"t-pooled": 2, "t-schema": 1, "t-database": 1} {
			if n, err := countInvoices(ctx, f.Fleet, id); err != nil || n != want {
				t.Errorf("%s: %d invoices (%v), want %d", id, n, err, want)
			}
		}
	})
}

func TestARecreatedTenantStartsCleanOnPostgres(t *testing.T) {
	env := pgtest.New(t)
	ctx := context.Background()
	f := openPostgres(t, env, invoices)
	for _, mode := range []store.Mode{store.Schema, store.Database} {
		t.Run(string(mode), func(t *testing.T) {
			id := "again-" + string(mode)
			tid := tenant.MustParse(id)
			if _, err := f.Create(ctx, fleet.Spec{ID: id, Isolation: new(string(mode))}); err != nil {
				t.Fatal(err)
			}
			if err := addInvoice(ctx, f.Fleet, id, 1); err != nil {
				t.Fatal(err)
			}
			if err := f.Offboard(ctx, tid); err != nil {
				t.Fatal(err)
			}
			if err := f.Offboard(ctx, tid); !errors.Is(err, catalog.ErrNotFound) {
				t.Fatalf("second Offboard: %v, want catalog.ErrNotFound", err)
			}
			if _, err := f.Create(ctx, fleet.Spec{ID: id, Isolation: new(string(mode))}); err != nil {
				t.Fatal(err)
			}
			if n, err := countInvoices(ctx, f.Fleet, id); err != nil || n != 0 {
				t.Fatalf("the new tenant sees %d invoices (%v), want 0", n, err)
			}
			if s := status(t, f.Fleet, id); s.Version != 2 {
				t.Fatalf("status %+v", s)
			}
		})
	}
}

func TestAFailedMigrationOnPostgresLeavesTheOthersMigrated(t *testing.T) {
	env := pgtest.New(t)
	ctx := context.Background()
	f := openPostgres(t, env, invoices[:1])
	for _, id := range []string{"alpha", "bravo", "zulu"} {
		if _, err := f.Create(ctx, fleet.Spec{ID: id, Isolation: new("schema")}); err != nil {
			t.Fatal(err)
		}
	}
	// zulu's schema has a table with the name migration 2 gives its index.
	schema := pgx.Identifier{tenant.MustParse("zulu").StorageName()}.Sanitize()
	owner, err := pgx.Connect(ctx, env.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(ctx)
	if _, err := owner.Exec(ctx, `CREATE TABLE `+schema+`.invoices_by_amount (x int)`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f = openPostgres(t, env, invoices)
	rep, err := f.Migrate(ctx, fleet.MigrateOptions{Concurrency: 1})
	var ue *migrate.UnitError
	if !errors.As(err, &ue) || ue.Unit.Tenant.String() != "zulu" {
		t.Fatalf("Migrate: %v, want a UnitError naming zulu", err)
	}
	if !strings.Contains(err.Error(), "tenant zulu") {
		t.Fatalf("the error does not name the tenant: %v", err)
	}
	for id, want := range map[string]int{"alpha": 2, "bravo": 2, "zulu": 1} {
		if s := status(t, f.Fleet, id); s.Version != want {
			t.Errorf("%s: %+v, want version %d", id, s, want)
		}
	}
	if rep.Counts[migrate.StateFailed] != 1 {
		t.Fatalf("counts %v", rep.Counts)
	}
}
