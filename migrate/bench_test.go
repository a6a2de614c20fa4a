package migrate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// BenchmarkMigrateUpSchemaFleet measures `migrate up` over 1,000 schema
// tenants on the PostgreSQL of BULKHEAD_TEST_POSTGRES:
//
//   - ms/tenant (the timed loop): a no-op run — list the units from the
//     catalog, read every schema's own version in a few statements (200
//     schemas each), apply nothing;
//
//   - apply-ms/tenant: one real migration (CREATE TABLE with RLS policies)
//     applied across the fleet, measured once, 4 units at a time;
//
//   - naive-ms/tenant: the baseline a per-schema check costs (open each
//     tenant's transaction and read its version there, what tools that
//     visit every schema do), measured once in the same run;
//
//   - naive/noop: how many times faster the no-op run is than that baseline.
//
//     BULKHEAD_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//     go test -run '^$' -bench MigrateUpSchemaFleet ./migrate
func BenchmarkMigrateUpSchemaFleet(b *testing.B) {
	const tenants = 1000
	f := newPGFleet(b, 4)
	ctx := context.Background()

	start := time.Now()
	ids := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				f.create(b, fmt.Sprintf("t%04d", i), store.Schema)
			}
		}()
	}
	for i := 0; i < tenants; i++ {
		ids <- i
	}
	close(ids)
	wg.Wait()
	provision := time.Since(start)

	ms := pgMigrations[:1]
	start = time.Now()
	rep, err := migrate.Run(ctx, f.plan(b, f.backend, ms))
	if err != nil {
		b.Fatal(err)
	}
	apply := time.Since(start)
	if rep.Counts["migrated"] != tenants+1 {
		b.Fatalf("first run counts %v", rep.Counts)
	}

	// Baseline: what a migrator that visits every schema does — open every
	// tenant schema's transaction and read its version there.
	start = time.Now()
	pool := f.backend.OperatorPool()
	for i := 0; i < tenants; i++ {
		schema := pgx.Identifier{tenant.MustParse(fmt.Sprintf("t%04d", i)).StorageName()}.Sanitize()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, schema); err != nil {
				return err
			}
			var v int
			return tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	naive := time.Since(start)

	a := &countingApplier{next: f.backend}
	for b.Loop() {
		rep, err := migrate.Run(ctx, f.plan(b, a, ms))
		if err != nil {
			b.Fatal(err)
		}
		if rep.Counts["current"] != tenants+1 {
			b.Fatalf("no-op run counts %v", rep.Counts)
		}
	}
	if a.calls.Load() != 0 {
		b.Fatalf("no-op runs applied %d units", a.calls.Load())
	}
	noop := b.Elapsed() / time.Duration(b.N)
	perTenant := func(d time.Duration) float64 { return float64(d) / tenants / float64(time.Millisecond) }
	b.ReportMetric(perTenant(noop), "ms/tenant")
	b.ReportMetric(perTenant(apply), "apply-ms/tenant")
	b.ReportMetric(perTenant(naive), "naive-ms/tenant")
	b.ReportMetric(perTenant(provision), "provision-ms/tenant")
	b.ReportMetric(float64(naive)/float64(noop), "naive/noop")
}
