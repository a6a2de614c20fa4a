package health_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulkhead-dev/bulkhead/health"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// load is one tenant's steady traffic: a rate, a share of errors and a
// log-normal latency, each bucket drawn with noise.
type load struct {
	id      tenant.ID
	rate    float64 // requests per second
	errRate float64
	median  time.Duration
	sigma   float64 // of the log of latency
}

// fleetLoads makes n tenants with varied loads from a fixed seed.
func fleetLoads(rng *rand.Rand, n int) []load {
	ls := make([]load, n)
	for i := range ls {
		ls[i] = load{
			id:      tenant.MustParse(fmt.Sprintf("t%03d", i)),
			rate:    3 + rng.Float64()*40,
			errRate: rng.Float64() * 0.02,
			median:  time.Duration(1+rng.IntN(80)) * time.Millisecond,
			sigma:   0.2 + rng.Float64()*0.4,
		}
	}
	return ls
}

// drive plays one bucket of l's traffic into m: the requests of the
// bucket (rate with ±20% noise), each an error with probability errRate.
func drive(m *health.Monitor, rng *rand.Rand, l load) {
	n := int(math.Round(l.rate * health.Bucket.Seconds() * (0.8 + 0.4*rng.Float64())))
	for range n {
		status := 200
		if rng.Float64() < l.errRate {
			status = 503
		}
		lat := time.Duration(float64(l.median) * math.Exp(l.sigma*rng.NormFloat64()))
		m.Observe(health.Sample{Tenant: l.id, Latency: lat, Status: status})
	}
}

// events parses the monitor's log lines.
func events(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// flagged returns every tenant with a raised flag, as "tenant:signal".
func flagged(m *health.Monitor) []string {
	var out []string
	for _, s := range m.Fleet() {
		for _, f := range s.Flags {
			out = append(out, s.Tenant.String()+":"+string(f.Signal))
		}
	}
	return out
}

// TestOneTenantSpikeIsFlaggedAlone runs 200 tenants with steady, varied
// loads for 15 minutes, then spikes one tenant's signal for 3 minutes and
// brings it back: exactly that tenant is flagged for that signal, the
// whole time (no other tenant ever is), and the flag clears once it is back.
func TestOneTenantSpikeIsFlaggedAlone(t *testing.T) {
	for _, tc := range []struct {
		signal health.Signal
		spike  func(l load) load
	}{
		{health.ErrorRate, func(l load) load { l.errRate = 0.3; return l }},
		{health.LatencyP99, func(l load) load { l.median *= 8; return l }},
		{health.RequestRate, func(l load) load { l.rate *= 5; return l }},
	} {
		t.Run(string(tc.signal)+" spike of one tenant among 200", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs bytes.Buffer
				m, err := health.New(health.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error)
				go func() { done <- m.Run(ctx) }()
				rng := rand.New(rand.NewPCG(14, uint64(len(tc.signal))))
				loads := fleetLoads(rng, 200)
				victim := 117
				// Start just after a bucket boundary, as Run does.
				time.Sleep(time.Until(time.Now().Truncate(health.Bucket).Add(health.Bucket + time.Millisecond)))
				play := func(buckets int, spike bool) {
					for range buckets {
						for i, l := range loads {
							if spike && i == victim {
								l = tc.spike(l)
							}
							drive(m, rng, l)
						}
						time.Sleep(health.Bucket)
						synctest.Wait()
					}
				}
				play(90, false) // 15 minutes of steady load: baselines learn
				if f := flagged(m); len(f) != 0 {
					t.Fatalf("flags under steady load: %v", f)
				}
				play(18, true) // 3 minutes of spike
				want := loads[victim].id.String() + ":" + string(tc.signal)
				if f := flagged(m); len(f) != 1 || f[0] != want {
					t.Fatalf("flags during the spike = %v, want [%s]", f, want)
				}
				r, _ := m.Tenant(loads[victim].id)
				if len(r.Flags) != 1 || r.Flags[0].Value <= r.Flags[0].Baseline {
					t.Fatalf("victim's report flags = %+v", r.Flags)
				}
				play(12, false) // 2 minutes back to normal
				if f := flagged(m); len(f) != 0 {
					t.Fatalf("flags after the tenant came back: %v", f)
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				var seen []string
				for _, e := range events(t, &logs) {
					seen = append(seen, fmt.Sprint(e["msg"], " ", e["tenant"], " ", e["signal"]))
					if e["baseline"] == nil || e["value"] == nil {
						t.Errorf("log event without value or baseline: %v", e)
					}
				}
				wantLog := []string{
					"tenant anomaly raised " + loads[victim].id.String() + " " + string(tc.signal),
					"tenant anomaly cleared " + loads[victim].id.String() + " " + string(tc.signal),
				}
				if fmt.Sprint(seen) != fmt.Sprint(wantLog) {
					t.Fatalf("log events = %q, want %q", seen, wantLog)
				}
			})
		})
	}
}

// TestAlwaysHighTenantIsNotFlagged: a tenant whose load is always far
// above everyone else's is judged against its own baseline.
func TestAlwaysHighTenantIsNotFlagged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := health.New(health.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go m.Run(ctx)
		rng := rand.New(rand.NewPCG(7, 7))
		loads := fleetLoads(rng, 50)
		loads[0] = load{id: tenant.MustParse("bigco"), rate: 400, errRate: 0.15, median: 900 * time.Millisecond, sigma: 0.4}
		time.Sleep(time.Until(time.Now().Truncate(health.Bucket).Add(health.Bucket + time.Millisecond)))
		for range 120 {
			for _, l := range loads {
				drive(m, rng, l)
			}
			time.Sleep(health.Bucket)
			synctest.Wait()
			if f := flagged(m); len(f) != 0 {
				t.Fatalf("flags under steady load (one tenant always high): %v", f)
			}
		}
		top := m.Top(health.ByRequests, 1)
		if len(top) != 1 || top[0].Tenant.String() != "bigco" {
			t.Fatalf("Top = %+v, want bigco first", top)
		}
	})
}

// TestSmallNumbersAreNotAnomalies: a quiet tenant that goes from no errors
// to one error, or from 1 to 3 requests a bucket, raises nothing.
func TestSmallNumbersAreNotAnomalies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := health.New(health.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go m.Run(ctx)
		quiet := tenant.MustParse("quiet")
		time.Sleep(time.Until(time.Now().Truncate(health.Bucket).Add(health.Bucket + time.Millisecond)))
		for i := range 120 {
			n, status := 1, 200
			if i >= 60 {
				n, status = 3, 500 // tripled, and all errors: still tiny
			}
			for range n {
				m.Observe(health.Sample{Tenant: quiet, Latency: time.Millisecond, Status: status})
			}
			time.Sleep(health.Bucket)
			synctest.Wait()
		}
		if f := flagged(m); len(f) != 0 {
			t.Fatalf("flags for small numbers: %v", f)
		}
	})
}
