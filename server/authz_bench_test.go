package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// BenchmarkAuthOverhead measures what authentication and authorization add
// to a request: the same no-op handler called bare (baseline), behind the
// data-plane guard with an API key, and with a JWT (warm JWKS cache, warm
// catalog caches); and the Cedar evaluation alone. Each sub-benchmark
// reports its difference to the baseline in ns/op (overhead-ns). The
// guard is the whole gate, rate limiter and admission included;
// apikey-authonly and jwt-authonly leave those two steps out, as the guard
// was before they moved into the gate (compare them with older runs).
//
//	go test -run '^$' -bench BenchmarkAuthOverhead ./server
func BenchmarkAuthOverhead(b *testing.B) {
	// A budget the benchmark never spends (the clock is frozen: it is all
	// burst), so that the rate limiter runs and never refuses.
	e, p, clk := jwtEnv(b, server.Options{RateLimits: fixedLimits{limits.Limits{RequestsPerSecond: 1e9, Burst: 1 << 40}}})
	key, _ := e.createKey("alpha", "reader")
	jwt := p.token(b, "a", p.claims("a", "alpha", "reader", clk.now()))
	noop := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	guarded := e.srv.GuardData("record.read", noop)
	authOnly := e.srv.GuardAuthOnly("record.read", noop)

	call := func(b *testing.B, h http.HandlerFunc, token string) {
		req := httptest.NewRequest("GET", "/v1/collections/notes/records/n1", nil)
		req.SetPathValue("c", "notes")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h(w, req) // warm caches (JWKS, catalog)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		b.ResetTimer()
		for b.Loop() {
			w := httptest.NewRecorder()
			h(w, req)
		}
	}
	var base float64 // ns/op of the latest baseline run
	nsPerOp := func(b *testing.B) float64 { return float64(b.Elapsed().Nanoseconds()) / float64(b.N) }
	overhead := func(b *testing.B) {
		if ns := nsPerOp(b); base > 0 {
			b.ReportMetric(ns-base, "overhead-ns")
			b.ReportMetric(ns/base, "x-baseline")
		}
	}
	b.Run("baseline", func(b *testing.B) { call(b, noop, ""); base = nsPerOp(b) })
	b.Run("apikey", func(b *testing.B) { call(b, guarded, key); overhead(b) })
	b.Run("jwt", func(b *testing.B) { call(b, guarded, jwt); overhead(b) })
	b.Run("apikey-authonly", func(b *testing.B) { call(b, authOnly, key); overhead(b) })
	b.Run("jwt-authonly", func(b *testing.B) { call(b, authOnly, jwt); overhead(b) })
	b.Run("cedar", func(b *testing.B) {
		ctx := context.Background()
		r := policy.Request{
			Principal: policy.Principal{Kind: policy.KindTenantKey, ID: "k", Tenant: tenant.MustParse("alpha"), Role: "reader"},
			Action:    "record.read", Tenant: tenant.MustParse("alpha"), Collection: "notes",
		}
		for b.Loop() {
			if d, err := e.srv.AuthorizeForBench(ctx, r); err != nil || !d.Allow {
				b.Fatal(d, err)
			}
		}
	})
}
