package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the registered "sqlite" driver, for the hand-written baselines

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

const (
	benchTenants = 100
	benchRecords = 50
	rawGet       = `SELECT data, version, created_at, updated_at FROM records WHERE tenant_id = ? AND collection = ? AND id = ?`
)

// BenchmarkGet compares a point read through the Router (ReadTx + Get) with
// the same read hand-written on database/sql, on the same files with the
// same driver and read-pool settings, one read transaction per read:
//
//   - raw: tx.QueryRow with the SQL text, as hand-written code usually is
//     (database/sql has the driver parse it on every call);
//   - prepared: a statement prepared once per pool, run with tx.Stmt — the
//     baseline for the Router's and backend's own overhead;
//   - scoped: the Router. Its line also reports scoped/raw and
//     scoped/prepared, each the median over interleaved rounds (a block of
//     each variant per round, in rotating order), so that load from other
//     processes on the machine hits all variants alike.
func BenchmarkGet(b *testing.B) {
	for _, mode := range []store.Mode{store.Pooled, store.Database} {
		b.Run(string(mode), func(b *testing.B) {
			e, ctxs := benchSetup(b, mode)
			pools := benchRawPools(b, e.Backend.(*Backend), mode)
			stmts := map[*sql.DB]*sql.Stmt{}
			for _, db := range pools {
				if stmts[db] == nil {
					st, err := db.Prepare(rawGet)
					if err != nil {
						b.Fatal(err)
					}
					stmts[db] = st
				}
			}
			ids := make([]string, benchRecords)
			for i := range ids {
				ids[i] = fmt.Sprintf("rec-%04d", i)
			}
			hand := func(get func(tx *sql.Tx, db *sql.DB, args ...any) *sql.Row) func(int) error {
				ctx := context.Background()
				return func(i int) error {
					name := benchTenant(i % benchTenants)
					db := pools[name]
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					defer func() { _ = tx.Rollback() }()
					var data []byte
					var version, created, updated int64
					if err := get(tx, db, name, "items", ids[(i/benchTenants)%benchRecords]).Scan(&data, &version, &created, &updated); err != nil {
						return err
					}
					rec := store.Record{Data: data, Version: version, CreatedAt: time.UnixMicro(created).UTC(), UpdatedAt: time.UnixMicro(updated).UTC()}
					_ = rec
					return tx.Commit()
				}
			}
			raw := hand(func(tx *sql.Tx, _ *sql.DB, args ...any) *sql.Row {
				return tx.QueryRowContext(context.Background(), rawGet, args...)
			})
			prepared := hand(func(tx *sql.Tx, db *sql.DB, args ...any) *sql.Row {
				return tx.Stmt(stmts[db]).QueryRowContext(context.Background(), args...)
			})
			scoped := func(i int) error {
				ctx := ctxs[i%benchTenants]
				return e.Router.ReadTx(ctx, func(tx *store.Tx) error {
					_, err := tx.Get(ctx, "items", ids[(i/benchTenants)%benchRecords])
					return err
				})
			}
			b.Run("raw", func(b *testing.B) { benchLoop(b, raw) })
			b.Run("prepared", func(b *testing.B) { benchLoop(b, prepared) })
			b.Run("scoped", func(b *testing.B) {
				benchLoop(b, scoped)
				ratios := interleave(b, []func(int) error{scoped, raw, prepared})
				b.ReportMetric(ratios[1], "scoped/raw")
				b.ReportMetric(ratios[2], "scoped/prepared")
			})
		})
	}
}

func benchLoop(b *testing.B, op func(int) error) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := op(i); err != nil {
			b.Fatal(err)
		}
	}
}

// interleave times rounds of a block of each op, in rotating order, and
// returns for each op the median over rounds of ops[0]'s time divided by
// its time.
func interleave(b *testing.B, ops []func(int) error) []float64 {
	const rounds, block = 31, 200
	perOp := make([][]float64, len(ops))
	for r := 0; r < rounds; r++ {
		times := make([]time.Duration, len(ops))
		for k := range ops {
			j := (r + k) % len(ops)
			start := time.Now()
			for i := 0; i < block; i++ {
				if err := ops[j](r*block + i); err != nil {
					b.Fatal(err)
				}
			}
			times[j] = time.Since(start)
		}
		for j := range ops {
			perOp[j] = append(perOp[j], float64(times[0])/float64(times[j]))
		}
	}
	out := make([]float64, len(ops))
	for j, rs := range perOp {
		slices.Sort(rs)
		out[j] = rs[len(rs)/2]
	}
	return out
}

func benchTenant(i int) string { return fmt.Sprintf("t%03d", i) }

// benchSetup provisions benchTenants tenants with benchRecords records each.
func benchSetup(b *testing.B, mode store.Mode) (*storetest.Env, []context.Context) {
	b.Helper()
	be, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	e := storetest.NewEnv(b, be, mode)
	ctxs := make([]context.Context, benchTenants)
	for i := range ctxs {
		ctx := e.Tenant(b, benchTenant(i))
		ctxs[i] = ctx
		err := e.Router.Tx(ctx, func(tx *store.Tx) error {
			for r := 0; r < benchRecords; r++ {
				data := fmt.Sprintf(`{"owner":%q,"n":%d,"title":"record %d of a benchmark tenant","tags":["a","b","c"],"done":false}`, benchTenant(i), r, r)
				if _, _, err := tx.Put(ctx, "items", fmt.Sprintf("rec-%04d", r), []byte(data), store.IfMatch{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return e, ctxs
}

// benchRawPools opens, for each tenant, the database/sql pool a
// hand-written reader would use: the registered "sqlite" driver with the
// backend's reader DSN and pool settings.
func benchRawPools(b *testing.B, be *Backend, mode store.Mode) map[string]*sql.DB {
	b.Helper()
	pools := map[string]*sql.DB{}
	openPool := func(path string, readers int) *sql.DB {
		db, err := sql.Open("sqlite", dsn(path, false, false, be.opts.BusyTimeout))
		if err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(readers)
		db.SetMaxIdleConns(min(readers, 2))
		b.Cleanup(func() { _ = db.Close() })
		return db
	}
	var shared *sql.DB
	if mode == store.Pooled {
		shared = openPool(filepath.Join(be.Dir(), "pooled.db"), pooledReaders())
	}
	for i := 0; i < benchTenants; i++ {
		name := benchTenant(i)
		if shared != nil {
			pools[name] = shared
			continue
		}
		pools[name] = openPool(filepath.Join(be.Dir(), "tenants", fileName(tenant.MustParse(name))), tenantReaders)
	}
	return pools
}

// BenchmarkTokenFilter compares an equality filter on sealed records,
// matched by their index tokens, with the same filter on the plaintext
// records (storetest.BenchTokenFilter): sealed/plain.
func BenchmarkTokenFilter(b *testing.B) {
	for _, mode := range []store.Mode{store.Pooled, store.Database} {
		b.Run(string(mode), func(b *testing.B) {
			be, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			storetest.BenchTokenFilter(b, be, mode)
		})
	}
}
