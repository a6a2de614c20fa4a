package server_test

import (
	"context"
	"flag"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/tracing/otlp"
	"github.com/bulkhead-dev/bulkhead/tracing/otlptest"
)

// BenchmarkTracing measures what exporting traces costs the data plane:
// the load of BenchmarkDataPlane (dataPlaneClients closed-loop clients
// over real loopback HTTP, dataplane.reads of GETs of one record, the
// rest PUTs) on two servers on SQLite (pooled), one tracing every request
// (OTEL_TRACES_SAMPLER=always_on, the batch span processor, OTLP/HTTP to a
// receiver in this process that reads and answers each export without
// decoding it, as a collector in another process would) and one with
// tracing off, in alternate rounds (the order flips every round). A
// traced round ends with a flush of its last spans, timed as part of it.
// Reported: ops/s of each and traced/off, the figure (target
// ≥ 0.95), with the rounds' median, geometric mean and the mean's 95 %
// confidence interval.
//
//	go test -run '^$' -bench BenchmarkTracing -benchtime 1x ./server
var (
	tracingOnly    = flag.String("tracing.only", "", `BenchmarkTracing: "traced" or "off" runs that variant alone (for a CPU profile of it)`)
	tracingSampler = flag.String("tracing.sampler", "always_on", `BenchmarkTracing: the traced server's OTEL_TRACES_SAMPLER, e.g. "parentbased_traceidratio" with -tracing.sampler-arg 0.1`)
	tracingArg     = flag.String("tracing.sampler-arg", "", "BenchmarkTracing: the traced server's OTEL_TRACES_SAMPLER_ARG")
	tracingSteps   = flag.Bool("tracing.steps", false, "BenchmarkTracing: the traced server makes each of the gate's steps a span (server.Options.TraceSteps)")
)

func BenchmarkTracing(b *testing.B) {
	rcv := otlptest.NewReceiver(b)
	rcv.Discard()
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	b.Setenv("OTEL_TRACES_SAMPLER", *tracingSampler)
	b.Setenv("OTEL_TRACES_SAMPLER_ARG", *tracingArg)
	tp, err := otlp.Setup(context.Background(), otlp.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	traced := newBenchServerWith(b, server.Options{TracerProvider: tp, TraceSteps: *tracingSteps}, "pooled")
	off := newBenchServerWith(b, server.Options{}, "pooled")
	if err := tp.ForceFlush(context.Background()); err != nil {
		b.Fatal(err)
	}
	rcv.Reset() // the spans of the setup (tenants, keys, records) are not the load's

	var res [2]dataPlaneResult
	var rounds []float64 // traced/off of each round's adjacent pair
	for range b.N {
		for round := range *dataPlaneRounds {
			order := []int{0, 1}
			if round%2 == 1 {
				order = []int{1, 0}
			}
			var pair [2]dataPlaneResult
			for _, v := range order {
				if *tracingOnly != "" && *tracingOnly != []string{"traced", "off"}[v] {
					continue
				}
				pair[v] = dataPlaneLoad(b, []*benchServer{traced, off}[v], *dataPlaneRound)
				if v == 0 { // the round's last spans are its cost too, not the next round's
					t0 := time.Now()
					if err := tp.ForceFlush(context.Background()); err != nil {
						b.Fatal(err)
					}
					pair[v].elapsed += time.Since(t0)
				}
				res[v].add(pair[v])
			}
			if *tracingOnly == "" {
				rounds = append(rounds, pair[0].opsPerSec()/pair[1].opsPerSec())
			}
		}
	}
	if err := tp.ForceFlush(context.Background()); err != nil {
		b.Fatal(err)
	}
	if rcv.Requests() == 0 && *tracingOnly != "off" {
		b.Fatal("the receiver got no spans: tracing did not export")
	}
	t, o := res[0], res[1]
	if *tracingOnly != "" {
		r := map[string]dataPlaneResult{"traced": t, "off": o}[*tracingOnly]
		b.ReportMetric(r.opsPerSec(), *tracingOnly+"-ops/s")
		b.ReportMetric(r.cpuPerOp(r.goCPU), *tracingOnly+"-go-µs/op")
		b.ReportMetric(r.cpuPerOp(r.gcCPU), *tracingOnly+"-gc-µs/op")
		return
	}
	b.ReportMetric(t.opsPerSec(), "traced-ops/s")
	b.ReportMetric(o.opsPerSec(), "off-ops/s")
	b.ReportMetric(t.opsPerSec()/o.opsPerSec(), "traced/off")
	// The median of the rounds' ratios: a burst of load from elsewhere
	// on the shared machine spoils one round, not the figure.
	slices.Sort(rounds)
	b.ReportMetric(rounds[len(rounds)/2], "traced/off-median")
	// The rounds' geometric mean and its 95 % confidence interval: how
	// far the machine's noise leaves the figure uncertain.
	if gm, lo, hi, ok := pairedRatio(rounds); ok {
		b.ReportMetric(gm, "traced/off-gmean")
		b.ReportMetric(lo, "traced/off-ci95-low")
		b.ReportMetric(hi, "traced/off-ci95-high")
	}
	b.ReportMetric(t.cpuPerOp(t.goCPU), "traced-go-µs/op")
	b.ReportMetric(o.cpuPerOp(o.goCPU), "off-go-µs/op")
	b.ReportMetric(t.cpuPerOp(t.gcCPU), "traced-gc-µs/op")
	b.ReportMetric(o.cpuPerOp(o.gcCPU), "off-gc-µs/op")
	b.ReportMetric(float64(rcv.Bytes())/float64(t.ops), "exported-B/op")
}

// BenchmarkTracingGet is one client's GET of one record over loopback
// HTTP, on a server with tracing off and on one exporting every request
// (always_on, batch span processor, the in-process receiver): ns/op and
// allocs/op say what tracing adds to a request's own path (a profile's
// view; the ratio that counts is BenchmarkTracing's).
func BenchmarkTracingGet(b *testing.B) {
	rcv := otlptest.NewReceiver(b)
	rcv.Discard()
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	b.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	tp, err := otlp.Setup(context.Background(), otlp.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for _, v := range []struct {
		name string
		opts server.Options
	}{{"off", server.Options{}}, {"traced", server.Options{TracerProvider: tp}}} {
		b.Run(v.name, func(b *testing.B) {
			bs := newBenchServerWith(b, v.opts, "pooled")
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				bs.must(b, "GET", "/v1/collections/bench/records/r"+strconv.Itoa(i%benchRecords), bs.tokens[i%benchTenants], "", 200)
			}
		})
	}
}

// pairedRatio returns the geometric mean of ratios (one per round, each
// of two variants measured next to each other) and the bounds of its 95 %
// confidence interval (Student's t on the ratios' logarithms); ok is
// false for fewer than two ratios.
func pairedRatio(ratios []float64) (gmean, lo, hi float64, ok bool) {
	n := float64(len(ratios))
	if n < 2 {
		return 0, 0, 0, false
	}
	var sum, sq float64
	for _, r := range ratios {
		sum += math.Log(r)
	}
	mean := sum / n
	for _, r := range ratios {
		d := math.Log(r) - mean
		sq += d * d
	}
	half := studentT975(n-1) * math.Sqrt(sq/(n-1)/n)
	return math.Exp(mean), math.Exp(mean - half), math.Exp(mean + half), true
}

// studentT975 approximates the 97.5th percentile of Student's t with df
// degrees of freedom (Cornish–Fisher expansion around the normal's 1.96;
// within 1 % from 3 degrees of freedom up).
func studentT975(df float64) float64 {
	const z = 1.959964
	z3, z5 := z*z*z, z*z*z*z*z
	return z + (z3+z)/(4*df) + (5*z5+16*z3+3*z)/(96*df*df) + (3*z5*z*z+19*z5+17*z3-15*z)/(384*df*df*df)
}

// TestPairedRatio holds the benchmark's statistics to textbook values.
func TestPairedRatio(t *testing.T) {
	for _, c := range []struct{ df, want float64 }{{3, 3.182}, {5, 2.571}, {10, 2.228}, {39, 2.023}, {199, 1.972}} {
		if got := studentT975(c.df); math.Abs(got-c.want)/c.want > 0.01 {
			t.Errorf("t(0.975, %v) = %.3f, want %.3f", c.df, got, c.want)
		}
	}
	// ln ratios -0.1, 0, 0.1: mean 0, sd 0.1, half-width t(2)·0.1/√3.
	gm, lo, hi, ok := pairedRatio([]float64{math.Exp(-0.1), 1, math.Exp(0.1)})
	half := 4.303 * 0.1 / math.Sqrt(3)
	if !ok || math.Abs(gm-1) > 1e-9 || math.Abs(math.Log(hi)-half) > 0.05*half || math.Abs(math.Log(lo)+half) > 0.05*half {
		t.Errorf("pairedRatio = %v [%v, %v] %v, want 1 [%v, %v]", gm, lo, hi, ok, math.Exp(-half), math.Exp(half))
	}
	if _, _, _, ok := pairedRatio([]float64{0.9}); ok {
		t.Error("pairedRatio of one ratio: ok")
	}
}
