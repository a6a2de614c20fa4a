package ingressgrpc_test

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/bulkhead-dev/bulkhead/admission"
	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ingress/catalogauth"
	"github.com/bulkhead-dev/bulkhead/ingress/ingressgrpc"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/ratelimit"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// BenchmarkGate measures what the gate adds to a request, for the same
// credential (a tenant API key in a real SQLite catalog, through
// catalogauth.All, the default policy, the local rate limiter and
// admission, as the server composes them): a bare net/http handler and the
// same handler behind gate.Data (in process, httptest.NewRecorder), a bare
// unary gRPC handler and the same handler behind the unary interceptor
// (called in process with incoming metadata). Each guarded sub-benchmark
// reports overhead-ns over its bare handler; grpc also reports x-http, its
// ns/op over the http chain's, and overhead-x-http, the same for the
// overheads (the goal: within 1.2).
//
//	go test -run '^$' -bench BenchmarkGate ./ingress/ingressgrpc
func BenchmarkGate(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	cat, err := catalog.Open(filepath.Join(dir, "catalog.db"), catalog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cat.Close() })
	noProvision := func(context.Context, tenant.ID, store.Placement) error { return nil }
	if _, err := cat.CreateTenant(ctx, catalog.Tenant{ID: acme, Name: "Acme", Tier: "standard",
		Placement: store.Placement{Mode: store.Pooled, Shard: "local"}}, noProvision); err != nil {
		b.Fatal(err)
	}
	_, key, err := cat.CreateKey(ctx, acme, catalog.RoleReader, "bench")
	if err != nil {
		b.Fatal(err)
	}
	log, err := audit.OpenSQLite(filepath.Join(dir, audit.FileName))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { log.Close() })
	engine, err := policy.New(policy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	g, err := ingress.New(ingress.Config{
		Authenticator: catalogauth.All(cat, sha256.Sum256([]byte(operator)), nil),
		Policy:        engine,
		Grants:        cat,
		Limiter:       ratelimit.NewLocal(ratelimit.LocalOptions{}),
		Limits:        fixedLimits{RequestsPerSecond: 1e12, Burst: 1 << 30},
		Admission:     admission.New(admission.Options{}),
		Audit:         log,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}

	noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	guarded := g.Data("record.read", noop)
	req := httptest.NewRequest("GET", "/v1/collections/notes/records/n1", nil)
	req.SetPathValue("c", "notes")
	req.Header.Set("Authorization", "Bearer "+key)
	serve := func(b *testing.B, h http.Handler) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req) // warm the catalog's caches
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		for b.Loop() {
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	}

	resp := &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}
	handler := func(ctx context.Context, _ any) (any, error) { return resp, nil }
	intercept := ingressgrpc.Unary(g, methods)
	info := &grpc.UnaryServerInfo{FullMethod: checkName}
	in := &healthpb.HealthCheckRequest{}
	mdCtx := metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+key))
	call := func(b *testing.B, h grpc.UnaryHandler) {
		if _, err := intercept(mdCtx, in, info, h); err != nil { // warm
			b.Fatal(err)
		}
		for b.Loop() {
			h(mdCtx, in)
		}
	}
	callGuarded := func(b *testing.B) {
		if _, err := intercept(mdCtx, in, info, handler); err != nil { // warm
			b.Fatal(err)
		}
		for b.Loop() {
			intercept(mdCtx, in, info, handler)
		}
	}

	nsPerOp := func(b *testing.B) float64 { return float64(b.Elapsed().Nanoseconds()) / float64(b.N) }
	var bareHTTP, guardedHTTP, bareGRPC float64 // ns/op of the latest runs
	b.Run("bare-http", func(b *testing.B) { serve(b, noop); bareHTTP = nsPerOp(b) })
	b.Run("http", func(b *testing.B) {
		serve(b, guarded)
		guardedHTTP = nsPerOp(b)
		b.ReportMetric(guardedHTTP-bareHTTP, "overhead-ns")
	})
	b.Run("bare-grpc", func(b *testing.B) { call(b, handler); bareGRPC = nsPerOp(b) })
	b.Run("grpc", func(b *testing.B) {
		callGuarded(b)
		ns := nsPerOp(b)
		b.ReportMetric(ns-bareGRPC, "overhead-ns")
		if guardedHTTP > 0 {
			b.ReportMetric(ns/guardedHTTP, "x-http")
			b.ReportMetric((ns-bareGRPC)/(guardedHTTP-bareHTTP), "overhead-x-http")
		}
	})
}
