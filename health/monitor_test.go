package health_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/health"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var acme = tenant.MustParse("acme")

func mustNew(t testing.TB, opts health.Options) *health.Monitor {
	t.Helper()
	m, err := health.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWindowsCountWhatHappenedInThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := mustNew(t, health.Options{})
		// At the start of a minute.
		time.Sleep(time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)))
		start := time.Now()
		// Minute 0..9: 10 requests a minute, one error, one throttled, one queued.
		for minute := range 10 {
			for i := range 10 {
				m.Observe(health.Sample{Tenant: acme, Latency: time.Duration(i+1) * time.Millisecond,
					Status: map[bool]int{true: 500, false: 200}[i == 0], Throttled: i == 1, Queued: i == 2})
			}
			if minute < 9 {
				time.Sleep(time.Minute)
			}
		}
		time.Sleep(30 * time.Second) // 9.5 minutes after start
		r, ok := m.Tenant(acme)
		if !ok {
			t.Fatal("acme is not active")
		}
		// 1m: the buckets of 8:40 to 9:30, so minute 9's requests (at 9:00);
		// it covers 50 s (five whole buckets, none of the current one yet).
		want := []struct {
			span                time.Duration
			req, errs, thr, que int64
			seconds             float64
		}{
			{time.Minute, 10, 1, 1, 1, 50},
			{5 * time.Minute, 50, 5, 5, 5, 4*60 + 30},
			{15 * time.Minute, 100, 10, 10, 10, 14*60 + 30},
		}
		_ = start
		if len(r.Windows) != len(want) {
			t.Fatalf("%d windows", len(r.Windows))
		}
		for i, w := range want {
			got := r.Windows[i]
			if got.Span != w.span || got.Requests != w.req || got.Errors != w.errs || got.Throttled != w.thr || got.Queued != w.que || got.Seconds != w.seconds {
				t.Errorf("window %v = %+v, want %+v", w.span, got, w)
			}
			if w.req > 0 && (got.ErrorRate != 0.1 || got.Rate != float64(w.req)/w.seconds) {
				t.Errorf("window %v rates = %v, %v", w.span, got.ErrorRate, got.Rate)
			}
		}
		if len(r.Series) != health.HistoryMinutes {
			t.Fatalf("%d points", len(r.Series))
		}
		last := r.Series[len(r.Series)-1]
		if !last.At.Equal(start.Add(9*time.Minute)) || last.Requests != 10 || last.Errors != 1 || last.Throttled != 1 {
			t.Errorf("newest point = %+v", last)
		}
		old := r.Series[len(r.Series)-10]
		if !old.At.Equal(start) || old.Requests != 10 || old.P99Ms < 10*0.8 || old.P99Ms > 10*1.2 {
			t.Errorf("oldest point with data = %+v (p99 should be about 10 ms)", old)
		}
		if r.Series[len(r.Series)-11].Requests != 0 {
			t.Errorf("a point before the first request has requests")
		}
		// The 1m window right after a burst.
		for range 30 {
			m.Observe(health.Sample{Tenant: acme, Latency: 40 * time.Millisecond, Status: 200})
		}
		time.Sleep(5 * time.Second)
		r, _ = m.Tenant(acme)
		w := r.Windows[0]
		if w.Requests != 40 || w.Seconds != 55 || w.P99Ms < 40*0.81 || w.P99Ms > 40*1.19 || w.Errors != 1 {
			t.Errorf("1m window after a burst = %+v", w)
		}
		// An hour and more later, the history is empty and the tenant idle.
		time.Sleep(2 * time.Hour)
		r, _ = m.Tenant(acme)
		for _, p := range r.Series {
			if p.Requests != 0 {
				t.Fatalf("a point two hours later holds %+v", p)
			}
		}
	})
}

func TestHistogramRelativeError(t *testing.T) {
	m := mustNew(t, health.Options{})
	for d := 40 * time.Microsecond; d < 16*time.Second; d = d * 107 / 100 {
		id := tenant.MustParse(fmt.Sprintf("h%d", d))
		m.Observe(health.Sample{Tenant: id, Latency: d, Status: 200})
		r, _ := m.Tenant(id)
		got := r.Windows[0].P99
		if rel := float64(got-d) / float64(d); rel > 0.19 || rel < -0.19 {
			t.Errorf("p99 of one %v is %v (%.0f%% off)", d, got, rel*100)
		}
		m.Forget(id)
	}
}

func TestObserveDoesNotAllocate(t *testing.T) {
	m := mustNew(t, health.Options{})
	s := health.Sample{Tenant: acme, Latency: time.Millisecond, Status: 200, Queued: true}
	m.Observe(s)
	if n := testing.AllocsPerRun(1000, func() { m.Observe(s) }); n != 0 {
		t.Fatalf("Observe allocates %v times per call", n)
	}
}

func TestConcurrentObserveCountsEverything(t *testing.T) {
	m := mustNew(t, health.Options{})
	ids := []tenant.ID{acme, tenant.MustParse("beta"), tenant.MustParse("gamma")}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				m.Observe(health.Sample{Tenant: ids[(g+i)%3], Latency: time.Millisecond, Status: 200})
				if i%500 == 0 {
					m.Tenant(ids[i%3])
					m.Fleet()
					m.Tick()
				}
			}
		}()
	}
	wg.Wait()
	var total int64
	for _, s := range m.Fleet() {
		r, _ := m.Tenant(s.Tenant)
		total += r.Windows[2].Requests
	}
	if total != 8*2000 {
		t.Fatalf("counted %d requests, want %d", total, 8*2000)
	}
}

func TestMaxTenantsEvictsTheLeastRecentlySeen(t *testing.T) {
	m := mustNew(t, health.Options{MaxTenants: 20}) // one stripe
	id := func(i int) tenant.ID { return tenant.MustParse(fmt.Sprintf("t%d", i)) }
	for i := range 20 {
		m.Observe(health.Sample{Tenant: id(i), Status: 200})
	}
	m.Observe(health.Sample{Tenant: id(0), Status: 200}) // t0 is now the most recent
	m.Observe(health.Sample{Tenant: id(20), Status: 200})
	if n := m.Len(); n != 20 {
		t.Fatalf("tracking %d tenants, cap 20", n)
	}
	if _, ok := m.Tenant(id(1)); ok {
		t.Error("t1, the least recently seen, was not evicted")
	}
	for _, i := range []int{0, 2, 19, 20} {
		if _, ok := m.Tenant(id(i)); !ok {
			t.Errorf("t%d was evicted", i)
		}
	}
	// The evicted tenant comes back from zero.
	m.Observe(health.Sample{Tenant: id(1), Status: 500})
	r, _ := m.Tenant(id(1))
	if r.Windows[0].Requests != 1 || r.Windows[0].Errors != 1 {
		t.Fatalf("t1 back = %+v", r.Windows[0])
	}
}

func TestCapHoldsWithManyStripes(t *testing.T) {
	m := mustNew(t, health.Options{MaxTenants: 5000})
	for i := range 20000 {
		m.Observe(health.Sample{Tenant: tenant.MustParse(fmt.Sprintf("t%d", i)), Status: 200})
	}
	if n := m.Len(); n > 5000 || n < 4000 {
		t.Fatalf("tracking %d tenants with a cap of 5000", n)
	}
}

func TestForgottenTenantStartsFromZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := mustNew(t, health.Options{Baseline: health.Baseline{WarmUp: 3}})
		for range 10 {
			for range 100 {
				m.Observe(health.Sample{Tenant: acme, Latency: time.Millisecond, Status: 200})
			}
			time.Sleep(health.Bucket)
			m.Tick()
		}
		m.Forget(acme)
		if _, ok := m.Tenant(acme); ok {
			t.Fatal("a forgotten tenant is still active")
		}
		m.Observe(health.Sample{Tenant: acme, Latency: time.Millisecond, Status: 500})
		r, ok := m.Tenant(acme)
		if !ok || r.Windows[2].Requests != 1 || r.Windows[2].Errors != 1 {
			t.Fatalf("re-created tenant = %+v", r.Windows)
		}
		for _, p := range r.Series[:len(r.Series)-1] {
			if p.Requests != 0 {
				t.Fatalf("re-created tenant has old history: %+v", p)
			}
		}
	})
}

func TestIdleTenantsAreForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := mustNew(t, health.Options{IdleAfter: 10 * time.Minute})
		m.Observe(health.Sample{Tenant: acme, Status: 200})
		time.Sleep(9 * time.Minute)
		m.Tick()
		if _, ok := m.Tenant(acme); !ok {
			t.Fatal("forgotten before IdleAfter")
		}
		time.Sleep(2 * time.Minute)
		m.Tick()
		if _, ok := m.Tenant(acme); ok {
			t.Fatal("still active after IdleAfter")
		}
	})
}

// TestMemoryPerTenant measures the heap that tracking tenants costs and
// holds it to the figure in Monitor's doc comment (about 3 KiB plus the
// map entry; bounded here at 4 KiB).
func TestMemoryPerTenant(t *testing.T) {
	const n = 20000
	ids := make([]tenant.ID, n)
	for i := range ids {
		ids[i] = tenant.MustParse(fmt.Sprintf("tenant-%06d", i))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := mustNew(t, health.Options{})
	for _, id := range ids {
		m.Observe(health.Sample{Tenant: id, Latency: time.Millisecond, Status: 200})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per tenant (StateBytes %d)", per, health.StateBytes)
	if per > 4096 || per < float64(health.StateBytes) {
		t.Fatalf("%.0f bytes per tenant; the doc says about %d plus the map entry", per, health.StateBytes)
	}
	runtime.KeepAlive(m)
}

func TestTopAndFleet(t *testing.T) {
	m := mustNew(t, health.Options{})
	for i, spec := range []struct {
		reqs, errs int
		lat        time.Duration
	}{{5, 0, 100 * time.Millisecond}, {50, 1, time.Millisecond}, {20, 10, 10 * time.Millisecond}} {
		id := tenant.MustParse(fmt.Sprintf("t%d", i))
		for k := range spec.reqs {
			st := 200
			if k < spec.errs {
				st = 502
			}
			m.Observe(health.Sample{Tenant: id, Latency: spec.lat, Status: st})
		}
	}
	names := func(ss []health.Summary) string {
		var b []string
		for _, s := range ss {
			b = append(b, s.Tenant.String())
		}
		return strings.Join(b, ",")
	}
	for _, tc := range []struct {
		by   health.Order
		n    int
		want string
	}{
		{health.ByRequests, 3, "t1,t2,t0"},
		{health.ByErrors, 2, "t2,t1"},
		{health.ByLatency, 1, "t0"},
		{health.ByRequests, 10, "t1,t2,t0"},
	} {
		if got := names(m.Top(tc.by, tc.n)); got != tc.want {
			t.Errorf("Top(%s, %d) = %s, want %s", tc.by, tc.n, got, tc.want)
		}
	}
	if got := names(m.Fleet()); got != "t0,t1,t2" {
		t.Errorf("Fleet = %s", got)
	}
}

func TestZeroReport(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 30, 0, time.UTC)
	r := health.Zero(acme, now)
	if r.Tenant != acme || len(r.Windows) != 3 || len(r.Series) != health.HistoryMinutes || r.Flags == nil || r.Windows[0].Requests != 0 {
		t.Fatalf("Zero = %+v", r)
	}
	if !r.Series[len(r.Series)-1].At.Equal(now.Truncate(time.Minute)) {
		t.Fatalf("Zero's newest point at %v", r.Series[len(r.Series)-1].At)
	}
}

func TestAnomalyMetricIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		m := mustNew(t, health.Options{Registerer: reg, MaxFlagLabels: 2,
			Baseline: health.Baseline{WarmUp: 3, RaiseAfter: 1}})
		ids := []tenant.ID{tenant.MustParse("a1"), tenant.MustParse("a2"), tenant.MustParse("a3"), tenant.MustParse("calm")}
		time.Sleep(time.Until(time.Now().Truncate(health.Bucket).Add(health.Bucket + time.Millisecond)))
		for b := range 10 {
			for i, id := range ids {
				status := 200
				n := 50
				if b == 9 && i < 3 {
					status = 500 // a1..a3 fail everything in the last bucket
				}
				for range n {
					m.Observe(health.Sample{Tenant: id, Latency: time.Millisecond, Status: status})
				}
			}
			time.Sleep(health.Bucket)
			m.Tick()
		}
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, f := range fams {
			for _, mt := range f.GetMetric() {
				l := f.GetName() + "{"
				for _, lp := range mt.GetLabel() {
					l += lp.GetName() + "=" + lp.GetValue() + ","
				}
				lines = append(lines, fmt.Sprintf("%s} %g", l, mt.GetGauge().GetValue()))
			}
		}
		got := strings.Join(lines, "\n")
		want := strings.Join([]string{
			"bulkhead_tenant_anomalies{signal=error_rate,} 3",
			"bulkhead_tenant_anomalies{signal=latency_p99,} 0",
			"bulkhead_tenant_anomalies{signal=request_rate,} 0",
			"bulkhead_tenant_anomaly{signal=error_rate,tenant=a1,} 1",
			"bulkhead_tenant_anomaly{signal=error_rate,tenant=a2,} 1",
			"bulkhead_tenant_anomaly{signal=latency_p99,tenant=a1,} 0",
			"bulkhead_tenant_anomaly{signal=latency_p99,tenant=a2,} 0",
			"bulkhead_tenant_anomaly{signal=request_rate,tenant=a1,} 0",
			"bulkhead_tenant_anomaly{signal=request_rate,tenant=a2,} 0",
		}, "\n")
		if got != want {
			t.Fatalf("metrics (2 tenants named of 3 flagged):\n%s\nwant\n%s", got, want)
		}
	})
}
