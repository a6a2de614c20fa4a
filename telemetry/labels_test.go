package telemetry_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/telemetry"
)

// zipfFleet drives tenants through the real middleware with a skewed
// load, and counts each tenant's requests exactly.
type zipfFleet struct {
	m        *telemetry.Metrics
	h        http.Handler
	throttle *prometheus.CounterVec // as the gate's bulkhead_ratelimit_throttled_total
	streams  *prometheus.GaugeVec   // as bulkhead_event_streams
	rng      *rand.Rand
	zipf     *rand.Zipf
	n        int
	exact    map[string]int
}

var routes = []string{"GET /v1/collections/{c}/records/{id}", "PUT /v1/collections/{c}/records/{id}", "GET /v1/collections", "GET /v1/events"}

func newZipfFleet(n int) *zipfFleet {
	m := telemetry.NewMetrics(telemetry.MetricsOptions{})
	f := &zipfFleet{m: m, n: n, exact: map[string]int{}, rng: rand.New(rand.NewPCG(14, 2))}
	f.zipf = rand.NewZipf(f.rng, 1.1, 1, uint64(n-1))
	f.throttle = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_throttled_total"}, []string{"tenant", "reason"})
	f.streams = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "test_streams"}, []string{"tenant"})
	m.Registerer().MustRegister(f.throttle, f.streams)
	f.h = telemetry.Middleware(nil, m)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := telemetry.InfoFrom(r.Context())
		id := r.Header.Get("T")
		info.SetTenant(id)
		info.SetRoute(r.Header.Get("R"))
		code := 200
		switch x := f.rng.IntN(100); {
		case x < 3:
			code = 429
			f.throttle.WithLabelValues(m.TenantLabel(id), "rate_limited").Inc()
		case x < 5:
			code = 500
		case x < 10:
			code = 404
		}
		if r.Header.Get("R") == routes[3] {
			f.streams.WithLabelValues(m.TenantLabel(id)).Inc()
		}
		w.WriteHeader(code)
	}))
	return f
}

func (f *zipfFleet) tenant(i int) string { return fmt.Sprintf("tenant-%06d", i) }

// request sends one request of tenant i.
func (f *zipfFleet) request(i int) {
	id := f.tenant(i)
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("T", id)
	req.Header.Set("R", routes[f.rng.IntN(len(routes))])
	f.h.ServeHTTP(httptest.NewRecorder(), req)
	f.exact[id]++
}

// play sends one request of every tenant (all of them active), in a
// random order, between skewed requests (skewed of them).
func (f *zipfFleet) play(skewed int) {
	order := f.rng.Perm(f.n)
	per := skewed / f.n
	for k, i := range order {
		f.request(i)
		for range per {
			f.request(int(f.zipf.Uint64()))
		}
		if k < skewed%f.n {
			f.request(int(f.zipf.Uint64()))
		}
	}
}

// series counts each family's series and distinct tenant label values.
func (f *zipfFleet) series(t testing.TB) (series, tenants map[string]int, requests map[string]float64) {
	t.Helper()
	fams, err := f.m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	series, tenants, requests = map[string]int{}, map[string]int{}, map[string]float64{}
	for _, fam := range fams {
		seen := map[string]bool{}
		for _, mt := range fam.GetMetric() {
			series[fam.GetName()]++
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "tenant" {
					seen[lp.GetValue()] = true
					if fam.GetName() == "bulkhead_http_requests_total" {
						requests[lp.GetValue()] += mt.GetCounter().GetValue()
					}
				}
			}
		}
		if len(seen) > 0 {
			tenants[fam.GetName()] = len(seen)
		}
	}
	return series, tenants, requests
}

// TestTopTenantsAreLabelledAndExact drives 100,000 active tenants with a
// Zipf load through the middleware: every family stays within 2,000
// series and 102 tenant label values (100, _other, _none... here no
// _none), and after a re-rank the 50 busiest tenants hold labels whose
// counters count their requests exactly.
func TestTopTenantsAreLabelledAndExact(t *testing.T) {
	n, skewed := 100_000, 200_000
	if testing.Short() || raceEnabled { // the race detector makes each request ~10× slower
		n, skewed = 20_000, 40_000
	}
	synctest.Test(t, func(t *testing.T) {
		f := newZipfFleet(n)
		f.play(skewed)
		time.Sleep(telemetry.DefaultRerankInterval) // the next request re-ranks
		f.request(0)
		_, _, before := f.series(t)
		for k := range f.exact {
			f.exact[k] = 0
		}
		f.play(skewed)
		series, tenants, after := f.series(t)
		for fam, c := range series {
			if c > 2000 {
				t.Errorf("%s has %d series (bound 2,000)", fam, c)
			}
		}
		for fam, c := range tenants {
			if c > telemetry.DefaultMaxTenants+1 {
				t.Errorf("%s has %d tenant label values, want at most %d (and _other)", fam, c, telemetry.DefaultMaxTenants)
			}
		}
		if tenants["bulkhead_http_requests_total"] < telemetry.DefaultMaxTenants {
			t.Errorf("only %d tenants labelled", tenants["bulkhead_http_requests_total"])
		}
		for rank := range 50 {
			id := f.tenant(rank) // Zipf: tenant i is the (i+1)th busiest
			got := after[id] - before[id]
			if got != float64(f.exact[id]) || got == 0 {
				t.Errorf("busiest #%d (%s): counted %v while labelled, made %d requests", rank+1, id, got, f.exact[id])
			}
		}
		t.Logf("series per family: %v", series)
	})
}

// BenchmarkTenantSeries100k reports the series of each tenant-labelled
// family after 100,000 active tenants' skewed load, and the ns a request
// costs the middleware with the label scheme.
func BenchmarkTenantSeries100k(b *testing.B) {
	f := newZipfFleet(100_000)
	f.play(200_000)
	f.m.Rerank()
	b.ResetTimer()
	for range b.N {
		f.request(int(f.zipf.Uint64()))
	}
	b.StopTimer()
	f.m.Rerank()
	series, _, _ := f.series(b)
	b.ReportMetric(float64(series["bulkhead_http_requests_total"]), "series_http_requests")
	b.ReportMetric(float64(series["test_throttled_total"]), "series_throttled")
	b.ReportMetric(float64(series["test_streams"]), "series_streams")
	mx := 0
	for _, c := range series {
		mx = max(mx, c)
	}
	b.ReportMetric(float64(mx), "series_max_family")
	b.ReportMetric(float64(mx)/2000, "of_bound")
}
