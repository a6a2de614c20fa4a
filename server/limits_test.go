package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
)

func TestLimitsOverridesAndQuota(t *testing.T) {
	e := newEnv(t)
	tok := e.tenantWithKey("acme", "pooled")
	reader, _ := e.createKey("acme", "reader")

	// The admin view shows effective limits (standard tier) and usage.
	r := e.req("GET", "/v1/admin/tenants/acme", e.op, nil)
	want(t, r, 200, "")
	m := r.json(t)
	l, _ := m["limits"].(map[string]any)
	if l["tier"] != "standard" || l["max_records"] != float64(1_000_000) || l["weight"] != float64(2) {
		t.Fatalf("limits: %s", r.body)
	}

	// Invalid overrides are refused and change nothing (not even the name).
	for _, body := range []string{
		`{"name":"Renamed","limits":{"max_records":-1}}`,
		`{"limits":{"burst":0}}`,
		`{"limits":{"max_page_size":5000}}`,
		`{"limits":{"colour":1}}`,
		`{"limits":[]}`,
	} {
		want(t, e.req("PATCH", "/v1/admin/tenants/acme", e.op, body), 400, "invalid_limits")
	}
	if r := e.req("GET", "/v1/admin/tenants/acme", e.op, nil); r.json(t)["name"] != "acme" {
		t.Fatalf("invalid PATCH changed the tenant: %s", r.body)
	}

	r = e.req("PATCH", "/v1/admin/tenants/acme", e.op, `{"limits":{"max_records":3,"max_bytes":1000}}`)
	want(t, r, 200, "")
	if l := r.json(t)["limits"].(map[string]any); l["max_records"] != float64(3) || l["max_bytes"] != float64(1000) {
		t.Fatalf("after PATCH: %s", r.body)
	}

	// Concurrent writers race for the three slots.
	var wg sync.WaitGroup
	codes := make(chan int, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- e.req("POST", "/v1/collections/c/records", tok, `{"v":1}`).status
		}()
	}
	wg.Wait()
	close(codes)
	created, refused := 0, 0
	for c := range codes {
		switch c {
		case 201:
			created++
		case 403:
			refused++
		default:
			t.Errorf("status %d", c)
		}
	}
	if created != 3 || refused != 7 || e.count(tok, "c") != 3 {
		t.Fatalf("created %d refused %d stored %d", created, refused, e.count(tok, "c"))
	}
	r = e.req("PUT", "/v1/collections/c/records/extra", tok, `{"v":1}`)
	want(t, r, 403, "quota_exceeded")
	p := r.json(t)
	if p["resource"] != "records" || p["limit"] != float64(3) || p["usage"] != float64(3) || p["requested"] != float64(1) {
		t.Fatalf("problem: %s", r.body)
	}

	// Any role of the tenant reads its usage against its limits.
	r = e.req("GET", "/v1/usage", reader, nil)
	want(t, r, 200, "")
	u := r.json(t)
	usage := u["usage"].(map[string]any)
	if u["tenant"] != "acme" || usage["records"] != float64(3) || usage["bytes"] != float64(3*len(`{"v":1}`)) ||
		u["limits"].(map[string]any)["max_records"] != float64(3) {
		t.Fatalf("usage: %s", r.body)
	}
	if m := e.req("GET", "/v1/admin/tenants/acme", e.op, nil).json(t); m["usage"].(map[string]any)["bytes"] != float64(21) ||
		m["overrides"].(map[string]any)["max_records"] != float64(3) {
		t.Fatalf("admin view: %v", m)
	}
	want(t, e.req("GET", "/v1/usage", "", nil), 401, "unauthenticated")

	// Clearing the overrides restores the tier's quota.
	want(t, e.req("PATCH", "/v1/admin/tenants/acme", e.op, `{"limits":{}}`), 200, "")
	want(t, e.req("PUT", "/v1/collections/c/records/extra", tok, `{"v":1}`), 201, "")
}

func TestLimitsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "limits.json")
	if err := os.WriteFile(path, []byte(`{"tenants":{"acme":{"max_records":1}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnvIn(t, filepath.Join(dir, "data"), server.Options{LimitsFile: path})
	tok := e.tenantWithKey("acme", "pooled")
	// The file wins over the catalog override.
	want(t, e.req("PATCH", "/v1/admin/tenants/acme", e.op, `{"limits":{"max_records":10}}`), 200, "")
	want(t, e.req("PUT", "/v1/collections/c/records/a", tok, `{}`), 201, "")
	r := e.req("PUT", "/v1/collections/c/records/b", tok, `{}`)
	want(t, r, 403, "quota_exceeded")
	if !strings.Contains(r.json(t)["detail"].(string), "records quota is 1") {
		t.Fatalf("detail: %s", r.body)
	}

	if err := os.WriteFile(path, []byte(`{"tenants":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Open(t.Context(), server.Options{DataDir: filepath.Join(dir, "other"), LimitsFile: path}); err == nil {
		t.Fatal("Open accepted a limits file that does not parse")
	}
}

func TestTierBodyAndPageLimits(t *testing.T) {
	e := newEnv(t)
	want(t, e.req("POST", "/v1/admin/tenants", e.op, `{"id":"acme","tier":"free"}`), 201, "")
	tok, _ := e.createKey("acme", "admin")
	big := `{"s":"` + strings.Repeat("x", 300<<10) + `"}` // over free's 256 KiB, under the server's 1 MiB
	want(t, e.req("PUT", "/v1/collections/c/records/a", tok, big), 413, "body_too_large")
	want(t, e.req("POST", "/v1/collections/c/records", tok, big), 413, "body_too_large")
	want(t, e.req("GET", "/v1/collections/c/records?limit=101", tok, nil), 400, "invalid_limit")
	want(t, e.req("GET", "/v1/collections/c/records?limit=100", tok, nil), 200, "")
	// An override lifts both.
	want(t, e.req("PATCH", "/v1/admin/tenants/acme", e.op, `{"limits":{"max_body_bytes":1048576,"max_page_size":1000}}`), 200, "")
	want(t, e.req("PUT", "/v1/collections/c/records/a", tok, big), 201, "")
	want(t, e.req("GET", "/v1/collections/c/records?limit=1000", tok, nil), 200, "")
}
