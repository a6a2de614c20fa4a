package dashboard_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bulkhead-dev/bulkhead/health"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// fleet creates n tenants t-0000… through the control plane, and admin
// keys for the first withKeys of them.
func (e *env) fleet(n, withKeys int) (ids []string, keys map[string]string) {
	e.t.Helper()
	keys = map[string]string{}
	for i := range n {
		id := fmt.Sprintf("t-%04d", i)
		ids = append(ids, id)
		if i < withKeys {
			keys[id] = e.tenant(id, "Tenant "+strconv.Itoa(i))
			continue
		}
		e.admin("POST", "/v1/admin/tenants", map[string]string{"id": id, "name": "Tenant " + strconv.Itoa(i), "isolation": "pooled"}, 201)
	}
	return ids, keys
}

// load drives the fleet for buckets 10 s buckets of the server's clock:
// the tenants with keys through HTTP (3 requests a bucket, each a real
// record read), every other tenant by feeding the server's monitor
// directly (20–49 requests a bucket at its own steady latency: driving
// 1,000 tenants × 40 requests × 40 buckets over HTTP would take minutes
// here). From bucket spikeFrom on, tenant bad answers 60% of its
// requests with 500: no client request can make the server fail on
// purpose, so its errors are fed to the monitor too.
func (e *env) load(ids []string, keys map[string]string, bad string, buckets, spikeFrom int) {
	e.t.Helper()
	m := e.srv.HealthMonitor()
	for k := range buckets {
		for i, id := range ids {
			if key, ok := keys[id]; ok {
				for j := range 3 {
					if r := e.do("GET", "/v1/collections/notes/records/r"+strconv.Itoa(j), nil, "Authorization", "Bearer "+key); r.status != 404 {
						e.t.Fatalf("read of %s: %d", id, r.status)
					}
				}
				continue
			}
			tid, err := tenant.Parse(id)
			if err != nil {
				e.t.Fatal(err)
			}
			n := 20 + i%30
			for j := range n {
				s := health.Sample{Tenant: tid, Status: 200,
					Latency: time.Duration(5+i%40)*time.Millisecond + time.Duration(j%3)*100*time.Microsecond}
				if id == bad && k >= spikeFrom && j%5 < 3 {
					s.Status = 500
				}
				m.Observe(s)
			}
		}
		e.clock.Add(health.Bucket)
		m.Tick()
	}
}

func TestBrowserFindsTheMisbehavingTenantAmongAThousand(t *testing.T) {
	b := newBrowser(t)
	e := newEnv(t, server.Options{})
	const bad = "t-0613"
	ids, keys := e.fleet(1000, 10)
	e.load(ids, keys, bad, 42, 35) // 35 buckets of baseline (warm-up is 30), then 7 of errors

	var flagged []string
	for _, s := range e.srv.HealthMonitor().Fleet() {
		if len(s.Flags) > 0 {
			flagged = append(flagged, s.Tenant.String())
		}
	}
	if len(flagged) != 1 || flagged[0] != bad {
		t.Fatalf("the monitor flags %q, want only %s", flagged, bad)
	}

	// From here on, only what the dashboard shows.
	b.signIn(e.http.URL, e.op)
	if n := eval[int](b, `document.querySelectorAll("#fleet tbody tr").length`); n != 1000 {
		t.Fatalf("the fleet table shows %d tenants, want 1000", n)
	}
	first := eval[[]string](b, `(r => [r.dataset.id, r.className, r.cells[8].textContent])(document.querySelector("#fleet tbody tr"))`)
	if first[0] != bad || first[1] != "flagged" || !strings.Contains(first[2], "error_rate") {
		t.Fatalf("first fleet row %q, want %s flagged for error_rate", first, bad)
	}
	if n := eval[int](b, `document.querySelectorAll("#fleet tbody tr.flagged").length`); n != 1 {
		t.Fatalf("%d rows are flagged, want 1", n)
	}
	b.do(chromedp.WaitReady(`#top-errors li[data-id]`))
	if top := eval[string](b, `document.querySelector("#top-errors li").dataset.id`); top != bad {
		t.Fatalf("top by errors starts with %s, want %s", top, bad)
	}
	b.do(chromedp.Click(`#top-errors li[data-id="`+bad+`"]`), chromedp.WaitReady(`body[data-detail="`+bad+`"]`))
	// The errors chart: flat at zero, then the spike at its right end. The
	// spike's 70 s span two or three of the chart's minute points, and the
	// last point is the minute in progress, which may have just begun
	// (empty): the peak is the highest of the last three.
	ys := chartYs(t, eval[string](b, `document.querySelector("#chart-errors path.line").getAttribute("d")`))
	peak := slices.Min(ys[len(ys)-3:]) // SVG y grows downwards
	for i, y := range ys[:len(ys)-3] {
		if y <= peak {
			t.Fatalf("errors chart point %d (y %.1f) is as high as the spike (y %.1f): %v", i, y, peak, ys)
		}
	}
	if cls := eval[string](b, `document.getElementById("chart-errors").className`); cls != "chart bad" {
		t.Fatalf("errors chart class %q, want it marked bad", cls)
	}
	b.clean()
}

// chartYs returns the y of each point of an SVG path "Mx,yLx,y…".
func chartYs(t *testing.T, d string) []float64 {
	t.Helper()
	var ys []float64
	for _, p := range strings.FieldsFunc(d, func(r rune) bool { return r == 'M' || r == 'L' }) {
		_, y, ok := strings.Cut(p, ",")
		v, err := strconv.ParseFloat(y, 64)
		if !ok || err != nil {
			t.Fatalf("chart path %q: bad point %q", d, p)
		}
		ys = append(ys, v)
	}
	if len(ys) < 10 {
		t.Fatalf("chart path %q has %d points", d, len(ys))
	}
	return ys
}

// TestDashboardScreenshot writes the README's picture: a real server
// with 30 tenants, one of them misbehaving, its drill-down open. Run it
// with BULKHEAD_SCREENSHOT=docs/dashboard.png (relative to the
// repository root) and BULKHEAD_TEST_CHROMIUM set.
func TestDashboardScreenshot(t *testing.T) {
	out := os.Getenv("BULKHEAD_SCREENSHOT")
	if out == "" {
		t.Skip("BULKHEAD_SCREENSHOT is not set: set it to the PNG to write (e.g. docs/dashboard.png)")
	}
	if !strings.HasPrefix(out, "/") {
		out = "../" + out // tests run in dashboard/
	}
	b := newBrowser(t)
	e := newEnv(t, server.Options{})
	names := []string{"Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell", "Soylent"}
	ids, keys := e.fleet(30, 3)
	for i, id := range ids {
		n := names[i%len(names)] + " " + strconv.Itoa(i/len(names)+1)
		e.admin("PATCH", "/v1/admin/tenants/"+id, map[string]string{"name": n, "tier": []string{"free", "standard", "enterprise"}[i%3]}, 200)
	}
	const bad = "t-0017"
	e.load(ids, keys, bad, 42, 35)
	b.do(chromedp.EmulateViewport(1440, 1440))
	b.signIn(e.http.URL, e.op)
	b.do(chromedp.WaitReady(`#top-errors li[data-id]`),
		chromedp.Click(`#fleet tr[data-id="`+bad+`"]`), chromedp.WaitReady(`body[data-detail="`+bad+`"]`))
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", out, len(png))
	b.clean()
}

// staticTable is the benchmark's baseline: the same rows as a
// pre-rendered HTML table with the same stylesheet, marked when parsed.
func staticTable(t testing.TB, e *env, cookie string) http.Handler {
	f := fleetOf(t, e, cookie)
	css := e.get("/dashboard/assets/dashboard.css", nil).body
	var sb strings.Builder
	sb.WriteString(`<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><link rel="stylesheet" href="/s.css"></head><body><main><table id="fleet"><tbody>`)
	for _, r := range f.Tenants {
		fmt.Fprintf(&sb, `<tr data-id="%s"><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s · %s</td><td class="num"></td><td class="num"></td><td class="num"></td><td></td><td></td></tr>`,
			r.ID, r.ID, r.Name, r.Tier, r.State, r.Shard, r.Mode)
	}
	sb.WriteString(`</tbody></table></main><script>performance.mark("fleet-rendered");document.body.setAttribute("data-rendered","fleet")</script></body></html>`)
	page := sb.String()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/s.css" {
			w.Header().Set("Content-Type", "text/css")
			w.Write(css)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(page))
	})
}
