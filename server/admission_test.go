package server_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TestAdmissionInChainAndMetrics: data-plane requests pass admission (and
// leave nothing in flight), and its metrics are on /metrics. The queueing
// and refusal paths are covered by package admission's tests.
func TestAdmissionInChainAndMetrics(t *testing.T) {
	e := newEnvIn(t, t.TempDir(), server.Options{AdmissionCapacity: 1})
	tok := e.tenantWithKey("acme", "pooled")
	want(t, e.req("PUT", "/v1/collections/c/records/r1", tok, `{"a":1}`), http.StatusCreated, "")
	for i := 0; i < 3; i++ { // with a cap of 1, each must have released its slot
		want(t, e.req("GET", "/v1/collections/c/records/r1", tok, nil), http.StatusOK, "")
	}
	m := e.req("GET", "/metrics", "", nil)
	for _, name := range []string{"bulkhead_admission_in_flight 0", "bulkhead_admission_queued 0"} {
		if !strings.Contains(string(m.body), name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
}

// TestAdmissionQueuedTenantMetric: with the server saturated, the tenant
// whose requests wait is named on bulkhead_admission_tenant_queued, and
// the gauge empties once they are admitted.
func TestAdmissionQueuedTenantMetric(t *testing.T) {
	e := newEnvIn(t, t.TempDir(), server.Options{AdmissionCapacity: 1, AdmissionMaxWait: time.Minute})
	tok := e.tenantWithKey("acme", "pooled")
	want(t, e.req("PUT", "/v1/collections/c/records/r1", tok, `{"a":1}`), http.StatusCreated, "")
	release, err := e.srv.HoldAdmission(context.Background(), tenant.MustParse("other"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	codes := make(chan int, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- e.req("GET", "/v1/collections/c/records/r1", tok, nil).status
		}()
	}
	queued := `bulkhead_admission_tenant_queued{tenant="acme"} 3`
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(string(e.req("GET", "/metrics", "", nil).body), queued) {
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %q", queued)
		}
		time.Sleep(5 * time.Millisecond)
	}
	release()
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("a queued request ended with %d, want 200", c)
		}
	}
	m := string(e.req("GET", "/metrics", "", nil).body)
	if strings.Contains(m, `tenant_queued{tenant="acme"}`) || !strings.Contains(m, `bulkhead_admission_tenant_queued{tenant="_other"} 0`) {
		t.Errorf("after admission the gauge still names acme or lacks _other 0")
	}
}
