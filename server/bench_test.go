package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/telemetry"
)

const (
	benchTenants = 100
	benchRecords = 20 // per tenant, for get
)

// benchServer is a server on a real loopback listener with benchTenants
// tenants in one mode, each with a writer key and benchRecords records.
type benchServer struct {
	base   string
	client *http.Client
	tokens []string
}

func newBenchServer(b *testing.B, mode string) *benchServer {
	return newBenchServerWith(b, server.Options{}, mode)
}

// newBenchServerWith is newBenchServer on a server opened with opts (its
// PostgreSQL settings, say), logging to nowhere and without rate limits.
func newBenchServerWith(b *testing.B, opts server.Options, mode string) *benchServer {
	b.Helper()
	opts.Logger = telemetry.NewLogger(io.Discard, slog.LevelInfo) // log lines are still formatted
	// Throughput, not a tenant's budget: a standard tenant's rate limit
	// would turn most requests into 429s.
	opts.DisableRateLimit = true
	base, op := serveForBench(b, opts)
	bs := &benchServer{
		base: base,
		client: &http.Client{Transport: &http.Transport{
			MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute,
		}},
	}
	for i := 0; i < benchTenants; i++ {
		bs.tokens = append(bs.tokens, benchTenant(b, bs.client, base, op, fmt.Sprintf("tenant-%03d", i), mode))
	}
	var wg sync.WaitGroup
	for i, tok := range bs.tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < benchRecords; r++ {
				bs.must(b, "PUT", fmt.Sprintf("/v1/collections/bench/records/r%d", r), tok, benchBody(i, r), 201)
			}
		}()
	}
	wg.Wait()
	return bs
}

// serveForBench opens a server with opts in a temporary data directory,
// serves it on a loopback listener until the benchmark ends, and returns
// its base URL and the operator token.
func serveForBench(b *testing.B, opts server.Options) (base, op string) {
	b.Helper()
	opts.DataDir = b.TempDir()
	s, err := server.Open(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	if op, err = server.ReadOperatorToken(opts.DataDir); err != nil {
		b.Fatal(err)
	}
	return "http://" + ln.Addr().String(), op
}

// benchTenant creates tenant id with the given isolation and a writer key,
// and returns the key's token.
func benchTenant(b *testing.B, c *http.Client, base, op, id, isolation string) string {
	b.Helper()
	benchMust(b, c, base, "POST", "/v1/admin/tenants", op, fmt.Sprintf(`{"id":%q,"isolation":%q}`, id, isolation), 201)
	body := benchMust(b, c, base, "POST", "/v1/admin/tenants/"+id+"/keys", op, `{"role":"writer"}`, 201)
	i := bytes.Index(body, []byte(`"token":"`))
	if i < 0 {
		b.Fatalf("no token in %s", body)
	}
	tok := body[i+9:]
	return string(tok[:bytes.IndexByte(tok, '"')])
}

func benchBody(tenant, n int) string {
	return fmt.Sprintf(`{"tenant_no":%d,"n":%d,"status":"open","title":"a benchmark record with some text in it"}`, tenant, n)
}

func (bs *benchServer) do(method, path, token, body string) (int, []byte, error) {
	return benchDo(bs.client, bs.base, method, path, token, body)
}

func (bs *benchServer) must(b *testing.B, method, path, token, body string, status int) []byte {
	return benchMust(b, bs.client, bs.base, method, path, token, body, status)
}

// benchDo sends one request and returns the status and body. The body of
// a successful GET is read and dropped: benchmarks only count them, and
// the load generator must not add garbage of its own to the server's.
func benchDo(c *http.Client, base, method, path, token, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK && method == http.MethodGet {
		_, err = io.Copy(io.Discard, res.Body)
		return res.StatusCode, nil, err
	}
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, out, err
}

// benchMust is benchDo that reports (b.Errorf, safe from any goroutine)
// an error or a status other than status.
func benchMust(b *testing.B, c *http.Client, base, method, path, token, body string, status int) []byte {
	code, out, err := benchDo(c, base, method, path, token, body)
	if err != nil || code != status {
		b.Errorf("%s %s: %d %v %s", method, path, code, err, out)
	}
	return out
}

// latencies collects per-request latencies from parallel workers.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

func (l *latencies) quantile(q float64) time.Duration {
	slices.Sort(l.all)
	if len(l.all) == 0 {
		return 0
	}
	return l.all[int(q*float64(len(l.all)-1))]
}

// run measures op with 8 concurrent clients per GOMAXPROCS and reports
// throughput, p50 and p99, and (given a baseline p50) the p50 ratio.
func run(b *testing.B, baseline *time.Duration, op func(rng *rand.Rand) (int, int, error)) {
	var lat latencies
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t0 := time.Now()
			got, wantStatus, err := op(rng)
			local = append(local, time.Since(t0))
			if err != nil || got != wantStatus {
				b.Errorf("status %d, want %d (%v)", got, wantStatus, err)
				return
			}
		}
		lat.add(local)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	p50, p99 := lat.quantile(0.50), lat.quantile(0.99)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	if baseline != nil {
		if *baseline == 0 {
			*baseline = p50
		} else {
			b.ReportMetric(float64(p50)/float64(*baseline), "p50/healthz")
		}
	}
}

// BenchmarkHTTP measures record puts and gets over real loopback HTTP with
// benchTenants tenants, in each isolation mode. healthz (same middleware,
// no credential, no store) is the baseline of the p50/healthz ratio.
//
//	go test -run '^$' -bench BenchmarkHTTP -benchtime 3000x ./server
func BenchmarkHTTP(b *testing.B) {
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			bs := newBenchServer(b, mode)
			var baseline time.Duration
			b.Run("healthz", func(b *testing.B) {
				baseline = 0
				run(b, &baseline, func(*rand.Rand) (int, int, error) {
					code, _, err := bs.do("GET", "/healthz", "", "")
					return code, 200, err
				})
			})
			b.Run("put", func(b *testing.B) {
				run(b, &baseline, func(rng *rand.Rand) (int, int, error) {
					i, r := rng.IntN(benchTenants), rng.IntN(benchRecords)
					code, _, err := bs.do("PUT", fmt.Sprintf("/v1/collections/bench/records/r%d", r), bs.tokens[i], benchBody(i, r))
					return code, 200, err
				})
			})
			b.Run("get", func(b *testing.B) {
				run(b, &baseline, func(rng *rand.Rand) (int, int, error) {
					i, r := rng.IntN(benchTenants), rng.IntN(benchRecords)
					code, _, err := bs.do("GET", fmt.Sprintf("/v1/collections/bench/records/r%d", r), bs.tokens[i], "")
					return code, 200, err
				})
			})
		})
	}
}
