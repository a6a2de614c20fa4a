package telemetry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/telemetry"
)

func TestTenantLabelIsBounded(t *testing.T) {
	m := telemetry.NewMetrics(telemetry.MetricsOptions{MaxTenants: 3})
	for _, tc := range []struct{ in, want string }{
		{"", telemetry.NoTenant},
		{"acme", "acme"},
		{"beta", "beta"},
		{"acme", "acme"},
		{"gamma", "gamma"},
		{"delta", telemetry.OtherTenant},
		{"epsilon", telemetry.OtherTenant},
		{"beta", "beta"},
		{"", telemetry.NoTenant},
	} {
		if got := m.TenantLabel(tc.in); got != tc.want {
			t.Errorf("TenantLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTenantLabelBudgetHoldsUnderConcurrency(t *testing.T) {
	m := telemetry.NewMetrics(telemetry.MetricsOptions{MaxTenants: 10})
	var mu sync.Mutex
	own := map[string]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				id := fmt.Sprintf("t%d", i)
				if l := m.TenantLabel(id); l != telemetry.OtherTenant {
					if l != id {
						t.Errorf("label %q for %q", l, id)
					}
					mu.Lock()
					own[l] = true
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(own) != 10 {
		t.Fatalf("%d tenants got their own label, want exactly 10", len(own))
	}
}

func scrape(t *testing.T, m *telemetry.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("metrics status %d", rec.Code)
	}
	return rec.Body.String()
}

func TestMiddlewareLogsAndCountsWithoutSecrets(t *testing.T) {
	var buf bytes.Buffer
	logger := telemetry.NewLogger(&buf, slog.LevelInfo)
	m := telemetry.NewMetrics(telemetry.MetricsOptions{MaxTenants: 1})
	const secret = "SECRET-MARKER-42"
	h := telemetry.Middleware(logger, m)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := telemetry.InfoFrom(r.Context())
		info.SetID("req-1")
		info.SetRoute("PUT /v1/collections/{c}/records/{id}")
		info.SetTenant(r.Header.Get("X-Test-Tenant"))
		_, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	for _, tn := range []string{"acme", "beta"} {
		req := httptest.NewRequest("PUT", "/v1/collections/notes/records/"+secret+"?q="+secret, strings.NewReader(`{"s":"`+secret+`"}`))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("X-Test-Tenant", tn)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	logs := buf.String()
	if strings.Contains(logs, secret) {
		t.Fatalf("log holds request data:\n%s", logs)
	}
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 log lines, got %d:\n%s", len(lines), logs)
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"request_id": "req-1", "tenant": "acme", "route": "PUT /v1/collections/{c}/records/{id}",
		"status": float64(201), "method": "PUT",
	} {
		if entry[k] != want {
			t.Errorf("log %s = %v, want %v", k, entry[k], want)
		}
	}
	if _, ok := entry["duration_ms"]; !ok {
		t.Errorf("log has no duration_ms: %s", lines[0])
	}
	out := scrape(t, m)
	for _, want := range []string{
		`bulkhead_http_requests_total{code="201",route="PUT /v1/collections/{c}/records/{id}"} 2`,
		`bulkhead_tenant_requests_total{class="2xx",tenant="acme"} 1`,
		`bulkhead_tenant_requests_total{class="2xx",tenant="_other"} 1`,
		`bulkhead_http_request_duration_seconds_count{route="PUT /v1/collections/{c}/records/{id}"} 2`,
		`go_goroutines`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(out, secret) {
		t.Error("metrics hold request data")
	}
}

func TestMiddlewareCountsPanicsAndUnmatchedRoutes(t *testing.T) {
	var buf bytes.Buffer
	m := telemetry.NewMetrics(telemetry.MetricsOptions{})
	h := telemetry.Middleware(telemetry.NewLogger(&buf, slog.LevelInfo), m)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boom" {
			panic("boom")
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/nowhere", nil))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic was swallowed; it must reach the server")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/boom", nil))
	}()
	out := scrape(t, m)
	for _, want := range []string{
		`bulkhead_http_requests_total{code="404",route="_unmatched"} 1`,
		`bulkhead_http_requests_total{code="500",route="_unmatched"} 1`,
		`bulkhead_tenant_requests_total{class="4xx",tenant="_none"} 1`,
		`bulkhead_tenant_requests_total{class="5xx",tenant="_none"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s\n", want)
		}
	}
	if !strings.Contains(buf.String(), `"level":"ERROR"`) {
		t.Errorf("a 500 is not logged at level ERROR:\n%s", buf.String())
	}
}

func TestMetricsAreNotGlobal(t *testing.T) {
	a := telemetry.NewMetrics(telemetry.MetricsOptions{})
	b := telemetry.NewMetrics(telemetry.MetricsOptions{})
	a.ObserveRequest("acme", "GET /x", 200, 0)
	if strings.Contains(scrape(t, b), `tenant="acme"`) {
		t.Fatal("a second Metrics sees the first one's series")
	}
}
