package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
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
