package dashboard_test

import (
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/bulkhead-dev/bulkhead/server"
)

// BenchmarkFirstRender1000Tenants measures, in headless Chromium, the time
// from navigation start to the fleet table drawn with 1,000 tenants
// (performance.mark "fleet-rendered", set by the page's script once the
// rows are in the DOM): the dashboard page, its assets and its fleet API
// answer from a real server, against the same 1,000 rows as a static
// pre-rendered HTML table page with the same stylesheet (the baseline).
// It reports p50 and p99 of each in ms, and the ratio of the p50s.
func BenchmarkFirstRender1000Tenants(b *testing.B) {
	br := newBrowser(b)
	e := newEnv(b, server.Options{})
	ids, keys := e.fleet(1000, 0)
	e.load(ids, keys, "t-0500", 3, 1)
	c := e.mustSignIn()
	static := httptest.NewServer(staticTable(b, e, c.Name+"="+c.Value))
	defer static.Close()
	br.signIn(e.http.URL, e.op)

	measure := func(url string) float64 {
		br.do(chromedp.Navigate(url), chromedp.WaitReady(`body[data-rendered="fleet"]`))
		n := eval[int](br, `document.querySelectorAll("#fleet tbody tr").length`)
		if n != 1000 {
			b.Fatalf("%s shows %d rows, want 1000", url, n)
		}
		return eval[float64](br, `performance.getEntriesByName("fleet-rendered")[0].startTime`)
	}
	var dash, base []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dash = append(dash, measure(e.http.URL+"/dashboard/"))
		base = append(base, measure(static.URL+"/"))
	}
	b.StopTimer()
	q := func(xs []float64, p float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[min(len(s)-1, int(p*float64(len(s))))]
	}
	b.ReportMetric(q(dash, 0.5), "dashboard-p50-ms")
	b.ReportMetric(q(dash, 0.99), "dashboard-p99-ms")
	b.ReportMetric(q(base, 0.5), "static-p50-ms")
	b.ReportMetric(q(base, 0.99), "static-p99-ms")
	b.ReportMetric(q(dash, 0.5)/q(base, 0.5), "dashboard/static-p50")
	br.clean()
}
