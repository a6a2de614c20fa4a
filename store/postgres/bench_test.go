package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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

// BenchmarkPointRead compares a point read of one tenant's record, under
// forced row-level security and the secret tenant setting, with the same
// read written by hand: one pool.QueryRow with WHERE tenant_id = $1 on a
// copy of the table without row-level security, one round trip (raw). All
// variants run on the backend's serving pool, so on the same PostgreSQL
// backend process: on a 2-core machine, which core the scheduler gives a
// backend moves a read by tens of microseconds, which would otherwise land
// on one side of the ratio. The scoped reads are:
//
//   - store: Router.ReadTx + Tx.Get;
//   - library: postgres.ReadTx + QueryRow of the hand-written statement
//     (without its tenant predicate: the database confines it) on the
//     records table.
//
// For scale it also times, by hand, the forgeable design that the secret
// setting replaced: the tenant in a plain setting, set in the same round
// trip as the read, on a copy of the table whose policy compares tenant_id
// with that setting (plainguc).
//
// It runs for pooled and schema tenants. Rounds alternate the variants
// (blocks of 100 reads, rotating order) so that machine noise hits all
// alike; store/raw, library/raw and plainguc/raw are the ratios of the
// totals.
func BenchmarkPointRead(b *testing.B) {
	for _, mode := range []store.Mode{store.Pooled, store.Schema} {
		b.Run(string(mode), func(b *testing.B) { benchPointRead(b, mode) })
	}
}

func benchPointRead(b *testing.B, mode store.Mode) {
	env := pgtest.New(b)
	be := open(b, env, Options{MaxConns: 4})
	e := storetest.NewEnv(b, be, mode)
	const tenants = 100
	ctxs, _ := benchFill(b, e, tenants)
	ctx := context.Background()
	admin := be.OperatorPool()
	if _, err := admin.Exec(ctx, `CREATE TABLE bulkhead.bench_raw (LIKE bulkhead.records INCLUDING ALL);
		GRANT SELECT ON bulkhead.bench_raw TO `+ident(be.ServingRole())); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < tenants; i++ {
		n := benchName(i)
		if _, err := admin.Exec(ctx, `INSERT INTO bulkhead.bench_raw SELECT $1, 'c', 'rec-' || lpad(g::text, 3, '0'),
			json_build_object('owner', $1::text, 'n', g), 1, now(), now() FROM generate_series(0, $2 - 1) g`, n, benchRecords); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := admin.Exec(ctx, `CREATE TABLE bulkhead.bench_guc (LIKE bulkhead.records INCLUDING ALL);
		INSERT INTO bulkhead.bench_guc SELECT * FROM bulkhead.bench_raw;
		ALTER TABLE bulkhead.bench_guc ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
		CREATE POLICY guc ON bulkhead.bench_guc USING (tenant_id = (SELECT current_setting('bulkhead.tenant', true)));
		GRANT SELECT ON bulkhead.bench_guc TO `+ident(be.ServingRole())); err != nil {
		b.Fatal(err)
	}
	raw := be.serve
	const libGet = `SELECT data, version, created_at, updated_at FROM records WHERE collection = $1 AND id = $2`
	var data []byte
	var v int64
	var c, u time.Time
	variants := []func(i int) error{
		func(i int) error {
			return raw.QueryRow(ctx, rawGet, benchName(i%tenants), "c", fmt.Sprintf("rec-%03d", i%benchRecords)).Scan(&data, &v, &c, &u)
		},
		func(i int) error { return routerGet(e, ctxs[i%tenants], fmt.Sprintf("rec-%03d", i%benchRecords)) },
		func(i int) error {
			ctx := ctxs[i%tenants]
			return ReadTx(ctx, e.Router, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, libGet, "c", fmt.Sprintf("rec-%03d", i%benchRecords)).Scan(&data, &v, &c, &u)
			})
		},
		func(i int) error {
			var batch pgx.Batch
			batch.Queue(`SELECT set_config('bulkhead.tenant', $1, true)`, benchName(i%tenants))
			batch.Queue(strings.Replace(rawGet, "bench_raw", "bench_guc", 1), benchName(i%tenants), "c", fmt.Sprintf("rec-%03d", i%benchRecords))
			br := raw.SendBatch(ctx, &batch)
			defer br.Close()
			if _, err := br.Exec(); err != nil {
				return err
			}
			return br.QueryRow().Scan(&data, &v, &c, &u)
		},
	}
	for _, v := range variants { // warm up connections and statement caches
		for i := 0; i < 2*tenants; i++ {
			if err := v(i); err != nil {
				b.Fatal(err)
			}
		}
	}
	var total [4]time.Duration
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
	b.ReportMetric(float64(total[1].Nanoseconds())/n, "store-ns/read")
	b.ReportMetric(float64(total[2].Nanoseconds())/n, "library-ns/read")
	b.ReportMetric(float64(total[1])/float64(total[0]), "store/raw")
	b.ReportMetric(float64(total[2])/float64(total[0]), "library/raw")
	b.ReportMetric(float64(total[3])/float64(total[0]), "plainguc/raw")
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

// BenchmarkTokenFilter compares an equality filter on sealed records,
// matched by their index tokens, with the same filter on the plaintext
// records (storetest.BenchTokenFilter): sealed/plain.
func BenchmarkTokenFilter(b *testing.B) {
	for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
		b.Run(string(mode), func(b *testing.B) {
			storetest.BenchTokenFilter(b, open(b, pgtest.New(b), Options{MaxConns: 4}), mode)
		})
	}
}

// BenchmarkPutEvents measures what the transactional outbox costs a write:
// Router.Tx + Tx.Put replacing a record, on routers over the same backend
// and tenants, one with events (every Put appends one to the outbox in its
// transaction) and one made with store.Config.NoEvents (the baseline: the
// same write without an outbox). Rounds alternate the two (blocks of 50
// Puts, rotating order) so that machine noise hits both alike;
// events/noevents is the ratio of the totals.
func BenchmarkPutEvents(b *testing.B) {
	for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
		b.Run(string(mode), func(b *testing.B) { benchPutEvents(b, mode) })
	}
}

func benchPutEvents(b *testing.B, mode store.Mode) {
	be := open(b, pgtest.New(b), Options{MaxConns: 4})
	e := storetest.NewEnv(b, be, mode)
	const tenants = 10
	ctxs, _ := benchFill(b, e, tenants)
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i + 1)
	}
	quiet, err := store.NewRouter(store.Config{Placements: e.Placements, Backends: e.Shards, CursorKey: key, Quotas: e.Quotas, NoEvents: true})
	if err != nil {
		b.Fatal(err)
	}
	routers := []*store.Router{quiet, e.Router}
	put := func(r *store.Router, i int) error {
		ctx := ctxs[i%tenants]
		return r.Tx(ctx, func(tx *store.Tx) error {
			_, _, err := tx.Put(ctx, "c", fmt.Sprintf("rec-%03d", i%benchRecords), []byte(fmt.Sprintf(`{"n":%d}`, i)), store.IfMatch{})
			return err
		})
	}
	for _, r := range routers { // warm up connections and statements
		for i := 0; i < 2*tenants; i++ {
			if err := put(r, i); err != nil {
				b.Fatal(err)
			}
		}
	}
	var total [2]time.Duration
	const block = 50
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		for k := range routers {
			v := (k + round) % len(routers)
			start := time.Now()
			for i := 0; i < block; i++ {
				if err := put(routers[v], done+i); err != nil {
					b.Fatal(err)
				}
			}
			total[v] += time.Since(start)
		}
		done += block
	}
	b.StopTimer()
	n := float64(max(b.N, block))
	b.ReportMetric(float64(total[0].Nanoseconds())/n, "noevents-ns/put")
	b.ReportMetric(float64(total[1].Nanoseconds())/n, "events-ns/put")
	b.ReportMetric(float64(total[1])/float64(total[0]), "events/noevents")
}
