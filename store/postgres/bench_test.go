package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

const (
	benchRecords = 10
	rawGet       = `SELECT data, version, created_at, updated_at FROM bulkhead.bench_raw WHERE tenant_id = $1 AND collection = $2 AND id = $3`
)

func benchName(i int) string { return fmt.Sprintf("tenant-%04d", i) }

// benchFill provisions n tenants with benchRecords records each and
// returns their contexts and the mean provisioning time per tenant.
func benchFill(b *testing.B, e *storetest.Env, n int) ([]context.Context, time.Duration) {
	b.Helper()
	ctxs := make([]context.Context, n)
	start := time.Now()
	for i := range ctxs {
		ctxs[i] = e.Tenant(b, benchName(i))
	}
	per := time.Since(start) / time.Duration(n)
	for i, ctx := range ctxs {
		if err := e.Router.Tx(ctx, func(tx *store.Tx) error {
			for r := 0; r < benchRecords; r++ {
				if _, _, err := tx.Put(ctx, "c", fmt.Sprintf("rec-%03d", r), []byte(fmt.Sprintf(`{"owner":%q,"n":%d}`, benchName(i), r)), store.IfMatch{}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	return ctxs, per
}

func routerGet(e *storetest.Env, ctx context.Context, id string) error {
	return e.Router.ReadTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Get(ctx, "c", id)
		return err
	})
}

// BenchmarkPointRead compares a point read through the Router in pooled
// mode (ReadTx + Get: BEGIN with the tenant setting, the read under forced
// RLS with its tenant predicate, COMMIT) with the same read hand-written on
// pgx on the same serving pool: a read-only READ COMMITTED transaction
// running the same statement with WHERE tenant_id = $1 on a copy of the
// table without row-level security; and the same with BEGIN pipelined with
// the read (rawpipe), as the backend pipelines it. Rounds alternate the two (blocks of
// 100 reads, rotating order) so that machine noise hits both alike;
// scoped/raw is the ratio of the totals.
func BenchmarkPointRead(b *testing.B) {
	env := pgtest.New(b)
	be := open(b, env, Options{MaxConns: 4})
	e := storetest.NewEnv(b, be, store.Pooled)
	const tenants = 100
	ctxs, _ := benchFill(b, e, tenants)
	ctx := context.Background()
	admin := be.AdminPool()
	if _, err := admin.Exec(ctx, `CREATE TABLE bulkhead.bench_raw (LIKE bulkhead.records INCLUDING ALL);
		GRANT SELECT ON bulkhead.bench_raw TO `+ident(be.ServingRole())); err != nil {
		b.Fatal(err)
	}
	err := pgx.BeginTxFunc(ctx, admin, pgx.TxOptions{}, func(tx pgx.Tx) error {
		for i := 0; i < tenants; i++ {
			if _, err := tx.Exec(ctx, `SELECT set_config('bulkhead.tenant', $1, true)`, benchName(i)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO bulkhead.bench_raw SELECT * FROM bulkhead.records WHERE tenant_id = $1`, benchName(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	rawRead := func(name, id string) error {
		return pgx.BeginTxFunc(ctx, be.serve, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			var data []byte
			var v int64
			var c, u time.Time
			return tx.QueryRow(ctx, rawGet, name, "c", id).Scan(&data, &v, &c, &u)
		})
	}
	// rawPipelined sends BEGIN with the read in one round trip, as the
	// backend does, so it isolates the cost of the tenant setting, RLS and
	// the Router from the round trip the backend saves.
	rawPipelined := func(name, id string) error {
		conn, err := be.serve.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		var batch pgx.Batch
		batch.Queue("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY")
		batch.Queue(rawGet, name, "c", id)
		br := conn.SendBatch(ctx, &batch)
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return err
		}
		var data []byte
		var v int64
		var c, u time.Time
		if err := br.QueryRow().Scan(&data, &v, &c, &u); err != nil {
			_ = br.Close()
			return err
		}
		if err := br.Close(); err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "COMMIT")
		return err
	}
	variants := []func(i int) error{
		func(i int) error { return rawRead(benchName(i%tenants), fmt.Sprintf("rec-%03d", i%benchRecords)) },
		func(i int) error { return rawPipelined(benchName(i%tenants), fmt.Sprintf("rec-%03d", i%benchRecords)) },
		func(i int) error { return routerGet(e, ctxs[i%tenants], fmt.Sprintf("rec-%03d", i%benchRecords)) },
	}
	for _, v := range variants { // warm up connections and statement caches
		for i := 0; i < 200; i++ {
			if err := v(i); err != nil {
				b.Fatal(err)
			}
		}
	}
	var total [3]time.Duration
	const block = 100
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		for k := range variants {
			v := (k + round) % len(variants)
			start := time.Now()
			for i := 0; i < block; i++ {
				if err := variants[v](done + i); err != nil {
					b.Fatal(err)
				}
			}
			total[v] += time.Since(start)
		}
		done += block
	}
	b.StopTimer()
	n := float64(max(b.N, block))
	b.ReportMetric(float64(total[0].Nanoseconds())/n, "raw-ns/read")
	b.ReportMetric(float64(total[1].Nanoseconds())/n, "rawpipe-ns/read")
	b.ReportMetric(float64(total[2].Nanoseconds())/n, "scoped-ns/read")
	b.ReportMetric(float64(total[2])/float64(total[0]), "scoped/raw")
	b.ReportMetric(float64(total[2])/float64(total[1]), "scoped/rawpipe")
}

// BenchmarkSchemaPointReadP99 compares the p99 latency of a point read
// through the Router in schema mode on a shard with 1,000 tenant schemas
// with one on a shard with 10, in one run (interleaved blocks, random
// tenant per read). It also reports the provisioning time per schema tenant
// and the time per unit of a no-op Apply over the 1,000 schemas.
func BenchmarkSchemaPointReadP99(b *testing.B) {
	ms := []migrate.Migration{{Version: 1, Name: "notes", SQL: `CREATE TABLE notes (tenant_id text NOT NULL, id text NOT NULL, body text, PRIMARY KEY (tenant_id, id))`}}
	type fleet struct {
		e    *storetest.Env
		ctxs []context.Context
		lat  []time.Duration
	}
	var fleets []*fleet
	var provision, noop time.Duration
	for _, n := range []int{10, 1000} {
		env := pgtest.New(b)
		be := open(b, env, Options{MaxConns: 4, Migrations: ms})
		e := storetest.NewEnv(b, be, store.Schema)
		ctxs, per := benchFill(b, e, n)
		if n == 1000 {
			provision = per
			start := time.Now()
			for i := 0; i < n; i++ {
				if _, err := be.Apply(context.Background(), migrate.Unit{Shard: storetest.Shard, Mode: store.Schema, Tenant: tenant.MustParse(benchName(i))}, ms); err != nil {
					b.Fatal(err)
				}
			}
			noop = time.Since(start) / time.Duration(n)
		}
		fleets = append(fleets, &fleet{e: e, ctxs: ctxs})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	read := func(f *fleet) {
		ctx := f.ctxs[rng.IntN(len(f.ctxs))]
		start := time.Now()
		if err := routerGet(f.e, ctx, fmt.Sprintf("rec-%03d", rng.IntN(benchRecords))); err != nil {
			b.Fatal(err)
		}
		f.lat = append(f.lat, time.Since(start))
	}
	for _, f := range fleets { // warm up: every tenant, so each has been planned and cached once
		for i := 0; i < 2; i++ {
			for _, ctx := range f.ctxs {
				if err := routerGet(f.e, ctx, "rec-000"); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	const block = 100
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		for k := range fleets {
			f := fleets[(k+round)%len(fleets)]
			for i := 0; i < block; i++ {
				read(f)
			}
		}
		done += block
	}
	b.StopTimer()
	p99 := func(l []time.Duration) time.Duration {
		s := slices.Clone(l)
		slices.Sort(s)
		return s[len(s)*99/100]
	}
	p10, p1000 := p99(fleets[0].lat), p99(fleets[1].lat)
	b.ReportMetric(float64(p10.Microseconds()), "p99-us-10")
	b.ReportMetric(float64(p1000.Microseconds()), "p99-us-1000")
	b.ReportMetric(float64(p1000)/float64(p10), "p99-1000/10")
	b.ReportMetric(float64(provision.Microseconds())/1000, "provision-ms/tenant")
	b.ReportMetric(float64(noop.Microseconds())/1000, "noop-apply-ms/unit")
}

// BenchmarkProvision measures provisioning one tenant in each mode (with two
// team migrations for schema and database tenants).
func BenchmarkProvision(b *testing.B) {
	for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
		b.Run(string(mode), func(b *testing.B) {
			env := pgtest.New(b)
			be := open(b, env, Options{MaxConns: 4, Migrations: teamMigrations})
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := be.Provision(ctx, tenant.MustParse(benchName(i)), mode); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/tenant")
		})
	}
}
