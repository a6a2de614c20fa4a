package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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
}

func (r *dataPlaneResult) add(o dataPlaneResult) {
	r.ops += o.ops
	r.elapsed += o.elapsed
	r.lat = append(r.lat, o.lat...)
	r.goCPU += o.goCPU
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
	go0, pg0 := processCPU(), postgresCPU()
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

// plainStore is the data path of a hand-written server.
type plainStore interface {
	get(ctx context.Context, tenant, collection, id string) (plainRecord, error)
	put(ctx context.Context, tenant, collection, id string, data []byte, now time.Time) (plainRecord, error)
}

var errPlainNotFound = errors.New("not found")

// plainRecord is what the hand-written server answers: the record as the
// server's record API encodes it.
type plainRecord struct {
	ID         string          `json:"id"`
	Collection string          `json:"collection"`
	Data       json.RawMessage `json:"data"`
	Version    int64           `json:"version"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// plainHandler serves GET and PUT of records for the tenant its static
// API-key map gives the bearer token.
func plainHandler(keys map[string]string, st plainStore) http.Handler {
	mux := http.NewServeMux()
	auth := func(r *http.Request) (string, bool) {
		t, ok := keys[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		return t, ok
	}
	answer := func(w http.ResponseWriter, status int, rec plainRecord) {
		body, err := json.Marshal(rec)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"`+strconv.FormatInt(rec.Version, 10)+`"`)
		w.WriteHeader(status)
		_, _ = w.Write(append(body, '\n'))
	}
	mux.HandleFunc("GET /v1/collections/{c}/records/{id}", func(w http.ResponseWriter, r *http.Request) {
		t, ok := auth(r)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		rec, err := st.get(r.Context(), t, r.PathValue("c"), r.PathValue("id"))
		if errors.Is(err, errPlainNotFound) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		answer(w, http.StatusOK, rec)
	})
	mux.HandleFunc("PUT /v1/collections/{c}/records/{id}", func(w http.ResponseWriter, r *http.Request) {
		t, ok := auth(r)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil || !json.Valid(data) {
			http.Error(w, "invalid json", http.StatusBadRequest)
			return
		}
		rec, err := st.put(r.Context(), t, r.PathValue("c"), r.PathValue("id"), data, time.Now().UTC().Truncate(time.Microsecond))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		status := http.StatusOK
		if rec.Version == 1 {
			status = http.StatusCreated
		}
		answer(w, status, rec)
	})
	return mux
}

// servePlain serves st on a loopback listener until the benchmark ends,
// with benchTenants tenants holding benchRecords records each, and returns
// a benchServer with their keys.
func servePlain(b *testing.B, st plainStore) *benchServer {
	b.Helper()
	keys := map[string]string{}
	bs := &benchServer{client: &http.Client{Transport: &http.Transport{
		MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute,
	}}}
	for i := range benchTenants {
		tok := fmt.Sprintf("key-%03d", i)
		keys[tok] = fmt.Sprintf("tenant-%03d", i)
		bs.tokens = append(bs.tokens, tok)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: plainHandler(keys, st), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	b.Cleanup(func() { _ = hs.Close() })
	bs.base = "http://" + ln.Addr().String()
	var wg sync.WaitGroup
	for i, tok := range bs.tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range benchRecords {
				bs.must(b, "PUT", fmt.Sprintf("/v1/collections/bench/records/r%d", r), tok, benchBody(i, r), 201)
			}
		}()
	}
	wg.Wait()
	return bs
}

// plainPostgres is the hand-written PostgreSQL data path: pgxpool, its
// statement cache (each statement prepared once per connection), and a
// table without row-level security.
type plainPostgres struct{ pool *pgxpool.Pool }

const (
	plainPGTable = `CREATE TABLE plain_records (
	tenant_id  text COLLATE "C" NOT NULL,
	collection text COLLATE "C" NOT NULL,
	id         text COLLATE "C" NOT NULL,
	data       json        NOT NULL,
	version    bigint      NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, collection, id)
)`
	plainPGGet = `SELECT data, version, created_at, updated_at FROM plain_records
	WHERE tenant_id = $1 AND collection = $2 AND id = $3`
	plainPGPut = `INSERT INTO plain_records AS r (tenant_id, collection, id, data, version, created_at, updated_at)
	VALUES ($1, $2, $3, $4, 1, $5, $5)
	ON CONFLICT (tenant_id, collection, id) DO UPDATE SET data = excluded.data, version = r.version + 1, updated_at = excluded.updated_at
	RETURNING version, created_at`
)

func newPlainPostgres(b *testing.B, dbURL string) *benchServer {
	b.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 8 // postgres.DefaultMaxConns, the server's pool
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, plainPGTable); err != nil {
		b.Fatal(err)
	}
	return servePlain(b, plainPostgres{pool})
}

func (p plainPostgres) get(ctx context.Context, tenant, collection, id string) (plainRecord, error) {
	rec := plainRecord{ID: id, Collection: collection}
	var data []byte
	err := p.pool.QueryRow(ctx, plainPGGet, tenant, collection, id).Scan(&data, &rec.Version, &rec.CreatedAt, &rec.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return rec, errPlainNotFound
	}
	rec.Data = data
	rec.CreatedAt, rec.UpdatedAt = rec.CreatedAt.UTC(), rec.UpdatedAt.UTC()
	return rec, err
}

func (p plainPostgres) put(ctx context.Context, tenant, collection, id string, data []byte, now time.Time) (plainRecord, error) {
	rec := plainRecord{ID: id, Collection: collection, Data: data, UpdatedAt: now}
	err := p.pool.QueryRow(ctx, plainPGPut, tenant, collection, id, data, now).Scan(&rec.Version, &rec.CreatedAt)
	rec.CreatedAt = rec.CreatedAt.UTC()
	return rec, err
}

// plainSQLite is the hand-written SQLite data path: one writer connection
// and a pool of readers on one WAL file, with the store's pragmas, and
// statements database/sql prepares per connection.
type plainSQLite struct {
	write, read      *sql.DB
	getStmt, putStmt *sql.Stmt
}

func newPlainSQLite(b *testing.B, path string) *benchServer {
	b.Helper()
	open := func(write bool) *sql.DB {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(5000)")
		q.Add("_pragma", "synchronous(FULL)")
		if write {
			q.Add("_pragma", "journal_mode(WAL)")
			q.Set("_txlock", "immediate")
		} else {
			q.Add("_pragma", "query_only(1)")
		}
		db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}).String())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = db.Close() })
		return db
	}
	p := plainSQLite{write: open(true)}
	p.write.SetMaxOpenConns(1)
	if _, err := p.write.Exec(`CREATE TABLE plain_records (
	tenant_id  TEXT    NOT NULL,
	collection TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	data       TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, collection, id)
) STRICT, WITHOUT ROWID`); err != nil {
		b.Fatal(err)
	}
	p.read = open(false)
	p.read.SetMaxOpenConns(4)
	p.read.SetMaxIdleConns(4)
	var err error
	if p.getStmt, err = p.read.Prepare(`SELECT data, version, created_at, updated_at FROM plain_records
	WHERE tenant_id = ?1 AND collection = ?2 AND id = ?3`); err != nil {
		b.Fatal(err)
	}
	if p.putStmt, err = p.write.Prepare(`INSERT INTO plain_records AS r (tenant_id, collection, id, data, version, created_at, updated_at)
	VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)
	ON CONFLICT (tenant_id, collection, id) DO UPDATE SET data = excluded.data, version = r.version + 1, updated_at = excluded.updated_at
	RETURNING version, created_at`); err != nil {
		b.Fatal(err)
	}
	return servePlain(b, p)
}

func (p plainSQLite) get(ctx context.Context, tenant, collection, id string) (plainRecord, error) {
	rec := plainRecord{ID: id, Collection: collection}
	var data string
	var created, updated int64
	err := p.getStmt.QueryRowContext(ctx, tenant, collection, id).Scan(&data, &rec.Version, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return rec, errPlainNotFound
	}
	rec.Data = json.RawMessage(data)
	rec.CreatedAt, rec.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return rec, err
}

func (p plainSQLite) put(ctx context.Context, tenant, collection, id string, data []byte, now time.Time) (plainRecord, error) {
	rec := plainRecord{ID: id, Collection: collection, Data: data, UpdatedAt: now}
	var created int64
	err := p.putStmt.QueryRowContext(ctx, tenant, collection, id, string(data), now.UnixMicro()).Scan(&rec.Version, &created)
	rec.CreatedAt = time.UnixMicro(created).UTC()
	return rec, err
}
