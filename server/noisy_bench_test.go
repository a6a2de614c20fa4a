package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Noisy-neighbour benchmark parameters. The flooder is a tenant whose
// requests are heavy (a 500-record page of ~1 KiB records, about 0.5 MB of
// JSON) and which sends ten times its rate limit, open loop. Its rate limit
// is high enough that the requests it is allowed would by themselves need
// more CPU than this 2-core machine has: that is the overload that fair
// admission exists for (a flood well under the server's capacity is
// absorbed by the rate limiter alone, whatever the admission order).
const (
	noisyVictims      = 4
	noisyVictimEvery  = 10 * time.Millisecond // per victim: 100 req/s, open loop
	noisyPhase        = 4 * time.Second
	noisyFloodLimit   = 1   // the flooder's MaxConcurrent
	noisyFloodRate    = 100 // the flooder's request rate limit (req/s); it sends 10× that
	noisyFloodFactor  = 10
	noisyFloodRecords = 500 // records per flooder list page
	noisyCapacity     = 4   // global in-flight cap (2-core machine)
	noisyRecords      = 50
	noisyChartEnvName = "BULKHEAD_NOISY_CHART"
)

// noisyLimits: victims and flooder, weight 1 each; the flooder may send
// noisyFloodRate req/s (burst as much), run noisyFloodLimit requests at
// once and queue 2 more; victims have room to spare.
type noisyLimits struct{}

func (noisyLimits) For(_ context.Context, id tenant.ID) (limits.Limits, error) {
	if id.String() == "flooder" {
		return limits.Limits{RequestsPerSecond: noisyFloodRate, Burst: noisyFloodRate,
			MaxConcurrent: noisyFloodLimit, Weight: 1, QueueDepth: 2}, nil
	}
	return limits.Limits{RequestsPerSecond: 1000, Burst: 1000, MaxConcurrent: 4, Weight: 1, QueueDepth: 16}, nil
}

type noisySample struct {
	at     time.Duration // since the start of the run
	lat    time.Duration
	tenant string
	status int
	phase  int
}

type noisyServer struct {
	logs   *serverTimes
	base   string
	tokens map[string]string
	// serverMark is ns.logs.mark() at the start of the last phase.
	serverMark int
}

// serverQuantiles returns the victims' server-side p50 and p99 of the last
// phase run on ns.
func (ns *noisyServer) serverQuantiles() (p50, p99 time.Duration) {
	return ns.logs.since(ns.serverMark)
}

// noisyMode is how the server under test treats the flood.
type noisyMode int

const (
	modeFair        noisyMode = iota // rate limits + fair admission (Bulkhead's default)
	modeFIFO                         // rate limits + plain FIFO admission: fairness off
	modeUnprotected                  // no rate limit, plain FIFO: no per-tenant protection at all
)

func startNoisyServer(b *testing.B, mode noisyMode) *noisyServer {
	b.Helper()
	logs := &serverTimes{}
	base, op := serveForBench(b, server.Options{
		Logger:            telemetry.NewLogger(logs, slog.LevelInfo),
		AdmissionCapacity: noisyCapacity,
		AdmissionFIFO:     mode != modeFair,
		AdmissionMaxWait:  2 * time.Second,
		AdmissionLimits:   noisyLimits{},
		RateLimits:        noisyLimits{},
		DisableRateLimit:  mode == modeUnprotected,
	})
	ns := &noisyServer{logs: logs, base: base, tokens: map[string]string{}}
	c := &http.Client{}
	names := []string{"flooder"}
	for i := 0; i < noisyVictims; i++ {
		names = append(names, fmt.Sprintf("victim-%d", i))
	}
	for _, id := range names {
		ns.tokens[id] = benchTenant(b, c, ns.base, op, id, "database")
		for r := 0; r < noisyRecords; r++ {
			benchMust(b, c, ns.base, "PUT", fmt.Sprintf("/v1/collections/bench/records/r%02d", r), ns.tokens[id], benchBody(0, r), 201)
		}
	}
	// The flooder's big collection: noisyFloodRecords records of ~1 KiB.
	// Seeding goes faster than its rate limit allows: wait out 429s.
	filler := strings.Repeat("x", 1000)
	for r := 0; r < noisyFloodRecords; r++ {
		for {
			code, out, err := benchDo(c, ns.base, "PUT", fmt.Sprintf("/v1/collections/big/records/r%03d", r), ns.tokens["flooder"],
				fmt.Sprintf(`{"n":%d,"text":%q}`, r, filler))
			if err == nil && code == http.StatusTooManyRequests {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if err != nil || code != http.StatusCreated {
				b.Fatalf("seeding the flooder: %d %v %s", code, err, out)
			}
			break
		}
	}
	if b.Failed() {
		b.FailNow() // a setup request failed (reported above)
	}
	return ns
}

// The load generator runs in a child process (the test binary started
// again with noisyLoadEnv set; see TestMain), as clients would run on
// other machines: its goroutines, heap and garbage collections are not
// the server's. The parent writes one noisyPhaseSpec per line on the
// child's stdin; the child runs it and answers with one noisyWireSample
// per request and then a line with "done". It exits at EOF.
const noisyLoadEnv = "BULKHEAD_NOISY_LOAD_GENERATOR"

type noisyPhaseSpec struct {
	Base   string            `json:"base"`
	Tokens map[string]string `json:"tokens"`
	Flood  bool              `json:"flood"`
}

type noisyWireSample struct {
	Start  int64  `json:"start"` // Unix nanoseconds
	Lat    int64  `json:"lat"`   // nanoseconds
	Tenant string `json:"tenant"`
	Status int    `json:"status"`
	Done   bool   `json:"done,omitempty"`
}

// loadGenerator is the parent's handle on the child process.
type loadGenerator struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startLoadGenerator(b *testing.B) *loadGenerator {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), noisyLoadEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	g := &loadGenerator{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	g.out.Buffer(make([]byte, 0, 64<<10), 1<<20)
	b.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("load generator: %v", err)
		}
	})
	return g
}

// runPhase has the load generator drive the victims (open loop, one GET
// every noisyVictimEvery each) and, if flood, the flooder
// (noisyFloodFactor × its rate limit, open loop, reading
// noisyFloodRecords-record pages) against ns for noisyPhase.
func (g *loadGenerator) runPhase(b *testing.B, ns *noisyServer, phase int, flood bool, t0 time.Time) []noisySample {
	ns.serverMark = ns.logs.mark()
	spec, err := json.Marshal(noisyPhaseSpec{Base: ns.base, Tokens: ns.tokens, Flood: flood})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := g.in.Write(append(spec, '\n')); err != nil {
		b.Fatalf("load generator: %v", err)
	}
	var out []noisySample
	for g.out.Scan() {
		var w noisyWireSample
		if err := json.Unmarshal(g.out.Bytes(), &w); err != nil {
			b.Fatalf("load generator said %q: %v", g.out.Text(), err)
		}
		if w.Done {
			return out
		}
		out = append(out, noisySample{at: time.Unix(0, w.Start).Sub(t0), lat: time.Duration(w.Lat),
			tenant: w.Tenant, status: w.Status, phase: phase})
	}
	b.Fatalf("load generator stopped: %v", g.out.Err())
	return nil
}

// noisyLoadMain is the child process: it runs the phases its stdin asks
// for, with one HTTP client per tenant per server, as if each tenant ran
// on its own machine.
func noisyLoadMain(in io.Reader, out io.Writer) int {
	clients := map[string]*http.Client{}
	client := func(base, id string) *http.Client {
		c := clients[base+" "+id]
		if c == nil {
			c = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute}}
			clients[base+" "+id] = c
		}
		return c
	}
	w := bufio.NewWriter(out)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var spec noisyPhaseSpec
		if err := json.Unmarshal(sc.Bytes(), &spec); err != nil {
			fmt.Fprintln(os.Stderr, "load generator:", err)
			return 1
		}
		cs := map[string]*http.Client{}
		for id := range spec.Tokens {
			cs[id] = client(spec.Base, id)
		}
		enc := json.NewEncoder(w)
		for _, s := range generateLoad(spec, cs) {
			if err := enc.Encode(s); err != nil {
				fmt.Fprintln(os.Stderr, "load generator:", err)
				return 1
			}
		}
		if err := enc.Encode(noisyWireSample{Done: true}); err != nil || w.Flush() != nil {
			return 1
		}
	}
	return 0
}

// generateLoad runs one phase: the victims, and the flooder if
// spec.Flood, for noisyPhase.
func generateLoad(spec noisyPhaseSpec, clients map[string]*http.Client) []noisyWireSample {
	var mu sync.Mutex
	var out []noisyWireSample
	send := func(id, path string) {
		start := time.Now()
		code, _, _ := benchDo(clients[id], spec.Base, "GET", path, spec.Tokens[id], "")
		s := noisyWireSample{Start: start.UnixNano(), Lat: int64(time.Since(start)), Tenant: id, Status: code}
		mu.Lock()
		out = append(out, s)
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), noisyPhase)
	defer cancel()
	// openLoop calls req(n) every d until the phase ends, each in its own
	// goroutine: requests keep coming whatever the answers.
	var wg sync.WaitGroup
	openLoop := func(d time.Duration, req func(n int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(d)
			defer tick.Stop()
			var reqs sync.WaitGroup
			defer reqs.Wait()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				reqs.Add(1)
				go func() { defer reqs.Done(); req(n) }()
			}
		}()
	}
	if spec.Flood {
		openLoop(time.Second/(noisyFloodFactor*noisyFloodRate), func(int) {
			send("flooder", fmt.Sprintf("/v1/collections/big/records?limit=%d", noisyFloodRecords))
		})
	}
	for v := 0; v < noisyVictims; v++ {
		id := fmt.Sprintf("victim-%d", v)
		openLoop(noisyVictimEvery, func(n int) {
			send(id, fmt.Sprintf("/v1/collections/bench/records/r%02d", n%noisyRecords))
		})
	}
	wg.Wait()
	return out
}

// serverTimes collects, from the server's own request log, how long the
// server took over each victim request (duration_ms: from the first
// middleware to the last byte handed to the connection, so it includes
// authentication, the rate limit and the wait for admission, but not the
// kernel, the network or the load generator).
type serverTimes struct {
	mu  sync.Mutex
	lat []time.Duration // victims only; guarded by mu
}

func (st *serverTimes) Write(p []byte) (int, error) {
	var e struct {
		Tenant     string  `json:"tenant"`
		DurationMS float64 `json:"duration_ms"`
	}
	if json.Unmarshal(p, &e) == nil && strings.HasPrefix(e.Tenant, "victim-") {
		st.mu.Lock()
		st.lat = append(st.lat, time.Duration(e.DurationMS*float64(time.Millisecond)))
		st.mu.Unlock()
	}
	return len(p), nil
}

// mark returns how many victim requests the log holds so far.
func (st *serverTimes) mark() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.lat)
}

// since returns the p50 and p99 of the victim requests logged after mark m.
func (st *serverTimes) since(m int) (p50, p99 time.Duration) {
	st.mu.Lock()
	lat := slices.Clone(st.lat[m:])
	st.mu.Unlock()
	return quantiles(lat)
}

func quantiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[int(0.99*float64(len(lat)-1))]
}

// victimQuantiles returns the p50 and p99 of the victims' latencies (all
// requests, whatever their status) and how many were not 200.
func victimQuantiles(s []noisySample) (p50, p99 time.Duration, failed int) {
	var lat []time.Duration
	for _, x := range s {
		if x.tenant == "flooder" {
			continue
		}
		lat = append(lat, x.lat)
		if x.status != http.StatusOK {
			failed++
		}
	}
	p50, p99 = quantiles(lat)
	return p50, p99, failed
}

// BenchmarkNoisyNeighbour runs real servers on loopback (SQLite in
// temporary directories) with noisyVictims victim tenants, each at a
// steady 100 req/s of point reads, and one tenant flooding at ten times
// its rate limit (1000 req/s, open loop, of 500-record pages; rate limit
// 100 req/s, concurrency limit 1). It reports the victims' p50/p99 alone,
// under the flood with Bulkhead's protection (rate limit + fair
// admission), under the flood with fairness off (rate limit + plain FIFO
// admission), and under the flood with no per-tenant protection at all
// (no rate limit, FIFO), each as a ratio to alone, all in one run, and
// writes an SVG chart of per-tenant latency over time to
// $BULKHEAD_NOISY_CHART (default: noisy-neighbour.svg in os.TempDir()).
// One iteration takes about 25 s:
//
//	go test ./server -run '^$' -bench NoisyNeighbour -benchtime 1x
func BenchmarkNoisyNeighbour(b *testing.B) {
	fair := startNoisyServer(b, modeFair)
	fifo := startNoisyServer(b, modeFIFO)
	bare := startNoisyServer(b, modeUnprotected)
	gen := startLoadGenerator(b)
	for b.Loop() {
		t0 := time.Now()
		// Warm-up (connections, caches), not measured.
		gen.runPhase(b, fair, -1, false, t0)
		gen.runPhase(b, fifo, -1, false, t0)
		gen.runPhase(b, bare, -1, false, t0)
		t0 = time.Now()
		alone := gen.runPhase(b, fair, 0, false, t0)
		sa50, sa99 := fair.serverQuantiles()
		fairFlood := gen.runPhase(b, fair, 1, true, t0)
		sf50, sf99 := fair.serverQuantiles()
		fifoFlood := gen.runPhase(b, fifo, 2, true, t0)
		sq50, sq99 := fifo.serverQuantiles()
		bareFlood := gen.runPhase(b, bare, 3, true, t0)
		su50, su99 := bare.serverQuantiles()

		a50, a99, aFail := victimQuantiles(alone)
		f50, f99, fFail := victimQuantiles(fairFlood)
		q50, q99, qFail := victimQuantiles(fifoFlood)
		u50, u99, uFail := victimQuantiles(bareFlood)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		ratio := func(x, y time.Duration) float64 { return float64(x) / float64(y) }
		b.ReportMetric(ms(a50), "alone-p50-ms")
		b.ReportMetric(ms(a99), "alone-p99-ms")
		b.ReportMetric(ms(f50), "fair-p50-ms")
		b.ReportMetric(ms(f99), "fair-p99-ms")
		b.ReportMetric(ms(q50), "fifo-p50-ms")
		b.ReportMetric(ms(q99), "fifo-p99-ms")
		b.ReportMetric(ms(u50), "unprotected-p50-ms")
		b.ReportMetric(ms(u99), "unprotected-p99-ms")
		b.ReportMetric(ratio(f50, a50), "fair/alone-p50")
		b.ReportMetric(ratio(f99, a99), "fair/alone-p99")
		b.ReportMetric(ratio(q50, a50), "fifo/alone-p50")
		b.ReportMetric(ratio(q99, a99), "fifo/alone-p99")
		b.ReportMetric(ratio(q99, f99), "fifo/fair-p99")
		b.ReportMetric(ratio(u99, f99), "unprotected/fair-p99")
		b.ReportMetric(float64(aFail+fFail+qFail+uFail), "victim-non200")
		codes := func(s []noisySample) map[int]int {
			m := map[int]int{}
			for _, x := range s {
				if x.tenant == "flooder" {
					m[x.status]++
				}
			}
			return m
		}
		b.ReportMetric(ratio(sf99, sa99), "server-fair/alone-p99")
		b.ReportMetric(ratio(sq99, sf99), "server-fifo/fair-p99")
		b.Logf("victim p50/p99 ms as the server logged them: alone %.2f/%.2f, fair %.2f/%.2f, fifo %.2f/%.2f, unprotected %.2f/%.2f",
			ms(sa50), ms(sa99), ms(sf50), ms(sf99), ms(sq50), ms(sq99), ms(su50), ms(su99))
		b.Logf("victim p50/p99 ms as the clients saw them: alone %.2f/%.2f, fair %.2f/%.2f, fifo %.2f/%.2f, unprotected %.2f/%.2f",
			ms(a50), ms(a99), ms(f50), ms(f99), ms(q50), ms(q99), ms(u50), ms(u99))
		b.Logf("victim non-200: alone %d, fair %d, fifo %d, unprotected %d", aFail, fFail, qFail, uFail)
		b.Logf("flooder statuses: fair %v, fifo %v, unprotected %v", codes(fairFlood), codes(fifoFlood), codes(bareFlood))

		path := os.Getenv(noisyChartEnvName)
		if path == "" {
			path = filepath.Join(os.TempDir(), "noisy-neighbour.svg")
		}
		all := slices.Concat(alone, fairFlood, fifoFlood, bareFlood)
		if err := os.WriteFile(path, noisySVG(all), 0o644); err != nil {
			b.Fatal(err)
		}
		b.Logf("chart: %s", path)
	}
}
