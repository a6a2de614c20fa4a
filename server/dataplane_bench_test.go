package server_test

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the registered "sqlite" driver, for the hand-written baseline

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
)

// The data-plane load: benchTenants tenants with benchRecords records
// each, dataPlaneClients closed-loop clients, dataplane.reads of the
// requests (80 %) a GET of a random record of a random tenant, the rest a
// PUT that replaces one.
const dataPlaneClients = 32

var (
	dataPlaneRounds = flag.Int("dataplane.rounds", 4, "BenchmarkDataPlane: rounds, each running every variant once")
	dataPlaneRound  = flag.Duration("dataplane.round", 2*time.Second, "BenchmarkDataPlane: how long each variant runs in a round")
	dataPlaneReads  = flag.Float64("dataplane.reads", 0.8, "BenchmarkDataPlane: the share of reads (1 for reads alone, 0 for writes alone)")
	dataPlaneOnly   = flag.String("dataplane.only", "", `BenchmarkDataPlane: "server" or "baseline" runs that variant alone (for a CPU profile of it)`)
)

// BenchmarkDataPlane measures the server's data plane against the
// hand-written server a competent team would write without Bulkhead, under
// the same load over real loopback HTTP, on the same engine:
//
//   - postgres: server.Open on PostgreSQL (pooled tenants, forced
//     row-level security, the serving role, default pool size) against a
//     bare net/http + pgxpool server (same pool size) on a copy of the
//     records table without row-level security, each statement binding
//     WHERE tenant_id = $1 (a read is one prepared SELECT, one round trip;
//     a write one INSERT ... ON CONFLICT DO UPDATE ... RETURNING).
//   - sqlite: server.Open on SQLite (pooled) against a bare net/http +
//     database/sql server on one SQLite file with the store's pragmas (WAL,
//     synchronous=FULL, one writer connection, a pool of readers).
//
// The baselines authenticate by a static map from API key to tenant and
// keep no quota, usage, audit, metrics or limits: the ratio measures what
// the whole server costs over the bare data path. The variants run
// alternately, dataplane.rounds rounds of dataplane.round each (the order
// flips every round), so that the noise of a shared machine falls on both.
// Reported: ops/s and p99 of each, server/baseline ratios, and the CPU
// time per operation of this process (server or baseline, and the load
// generator) and of a PostgreSQL on this machine (all its processes, so
// on a shared machine others' queries count too).
// -dataplane.reads=1 (or 0) measures reads (or writes) alone;
// -dataplane.only=server (or baseline) runs one variant alone, for a CPU
// profile of it.
//
//	BULKHEAD_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//	  go test -run '^$' -bench BenchmarkDataPlane -benchtime 1x ./server
func BenchmarkDataPlane(b *testing.B) {
	b.Run("postgres", func(b *testing.B) {
		env := pgtest.New(b)
		srv := newBenchServerWith(b, server.Options{
			PostgresURL:            env.ServeURL,
			PostgresAdminURL:       env.AdminURL,
			PostgresDatabasePrefix: env.Prefix,
		}, "pooled")
		base := newPlainPostgres(b, env.AdminURL)
		compareDataPlane(b, srv, base, true)
	})
	b.Run("sqlite", func(b *testing.B) {
		srv := newBenchServer(b, "pooled")
		base := newPlainSQLite(b, filepath.Join(b.TempDir(), "plain.db"))
		compareDataPlane(b, srv, base, false)
	})
}

// compareDataPlane runs the load on the server and the baseline in
// alternate rounds and reports both and their ratios, and PostgreSQL's CPU
// time if pg.
func compareDataPlane(b *testing.B, srv *benchServer, base *benchServer, pg bool) {
	var res [2]dataPlaneResult
	for range b.N {
		for round := range *dataPlaneRounds {
			order := []int{0, 1}
			if round%2 == 1 {
				order = []int{1, 0}
			}
			for _, v := range order {
				if *dataPlaneOnly != "" && *dataPlaneOnly != []string{"server", "baseline"}[v] {
					continue
				}
				target := []*benchServer{srv, base}[v]
				res[v].add(dataPlaneLoad(b, target, *dataPlaneRound))
			}
		}
	}
	s, p := res[0], res[1]
	if *dataPlaneOnly != "baseline" {
		b.ReportMetric(s.opsPerSec(), "server-ops/s")
		b.ReportMetric(ms(s.p99()), "server-p99-ms")
	}
	if *dataPlaneOnly != "" {
		if *dataPlaneOnly == "baseline" {
			b.ReportMetric(p.opsPerSec(), "baseline-ops/s")
			b.ReportMetric(ms(p.p99()), "baseline-p99-ms")
		}
		return
	}
	b.ReportMetric(p.opsPerSec(), "baseline-ops/s")
	b.ReportMetric(s.opsPerSec()/p.opsPerSec(), "ops-ratio")
	b.ReportMetric(ms(p.p99()), "baseline-p99-ms")
	b.ReportMetric(float64(s.p99())/float64(p.p99()), "p99-ratio")
	b.ReportMetric(s.cpuPerOp(s.goCPU), "server-go-µs/op")
	b.ReportMetric(p.cpuPerOp(p.goCPU), "baseline-go-µs/op")
	if pg && s.pgCPU >= 0 && p.pgCPU >= 0 {
		b.ReportMetric(s.cpuPerOp(s.pgCPU), "server-pg-µs/op")
		b.ReportMetric(p.cpuPerOp(p.pgCPU), "baseline-pg-µs/op")
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type dataPlaneResult struct {
	ops     int
	elapsed time.Duration
	lat     []time.Duration
	// goCPU is the CPU time of this process (the server or baseline and
	// the load generator); pgCPU that of local PostgreSQL, -1 if unknown.
	goCPU, pgCPU time.Duration
	// gcCPU is the part of goCPU the garbage collector took (estimated by
	// the runtime, runtime/metrics).
	gcCPU time.Duration
}

func (r *dataPlaneResult) add(o dataPlaneResult) {
	r.ops += o.ops
	r.elapsed += o.elapsed
	r.lat = append(r.lat, o.lat...)
	r.goCPU += o.goCPU
	r.gcCPU += o.gcCPU
	if r.pgCPU >= 0 {
		r.pgCPU += o.pgCPU
	}
	if o.pgCPU < 0 {
		r.pgCPU = -1
	}
}

// cpuPerOp returns d per operation in microseconds.
func (r *dataPlaneResult) cpuPerOp(d time.Duration) float64 {
	return float64(d.Microseconds()) / float64(r.ops)
}

func (r *dataPlaneResult) p99() time.Duration {
	l := latencies{all: r.lat}
	return l.quantile(0.99)
}

func (r *dataPlaneResult) opsPerSec() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// dataPlaneLoad runs dataPlaneClients clients on bs for d.
func dataPlaneLoad(b *testing.B, bs *benchServer, d time.Duration) dataPlaneResult {
	var res dataPlaneResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	go0, pg0, gc0 := processCPU(), postgresCPU(), gcCPU()
	start := time.Now()
	deadline := start.Add(d)
	for range dataPlaneClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
			local := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) {
				i, r := rng.IntN(benchTenants), rng.IntN(benchRecords)
				path := "/v1/collections/bench/records/r" + strconv.Itoa(r)
				t0 := time.Now()
				var code int
				var out []byte
				var err error
				if rng.Float64() < *dataPlaneReads {
					code, out, err = bs.do("GET", path, bs.tokens[i], "")
				} else {
					code, out, err = bs.do("PUT", path, bs.tokens[i], benchBody(i, r))
				}
				local = append(local, time.Since(t0))
				if err != nil || code != http.StatusOK {
					b.Errorf("%s: %d %v %s", path, code, err, out)
					return
				}
			}
			mu.Lock()
			res.ops += len(local)
			res.lat = append(res.lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.goCPU = processCPU() - go0
	res.gcCPU = gcCPU() - gc0
	if pg1 := postgresCPU(); pg0 >= 0 && pg1 >= 0 {
		res.pgCPU = pg1 - pg0
	} else {
		res.pgCPU = -1
	}
	return res
}

// processCPU returns the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// gcCPU returns the CPU time the garbage collector has used in this
// process, as the runtime estimates it.
func gcCPU() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}

// postgresCPU returns the CPU time used by the processes named postgres
// on this machine, from /proc (Linux, clock ticks of 10 ms), or -1. It
// counts a benchmark's connections while they are open.
func postgresCPU() time.Duration {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	var ticks int64
	found := false
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if i < 0 || j < i || string(b[i+1:j]) != "postgres" {
			continue
		}
		f := strings.Fields(string(b[j+1:])) // f[0] is field 3, the state
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14
		k, _ := strconv.ParseInt(f[12], 10, 64) // stime, field 15
		ticks += u + k
		found = true
	}
	if !found {
		return -1
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
