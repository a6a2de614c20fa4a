package otlp_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulkhead-dev/bulkhead/tracing"
	"github.com/bulkhead-dev/bulkhead/tracing/otlp"
	"github.com/bulkhead-dev/bulkhead/tracing/otlptest"
)

// BenchmarkRequestSpans is the tracing of one data-plane request, alone:
// the spans a GET makes (the request's, the gate's with its three events,
// one store.tx), with their attributes, ended and exported over OTLP/HTTP
// to a receiver in this process that discards them. Its ns/op and
// allocs/op are what tracing adds to a request, without the request.
func BenchmarkRequestSpans(b *testing.B) {
	otlp.ClearEnv(b)
	rcv := otlptest.NewReceiver(b)
	rcv.Discard()
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	b.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	tp, err := otlp.Setup(context.Background(), otlp.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer tp.Shutdown(context.Background())
	tr := tracing.NewTracer(tp)
	b.ReportAllocs()
	for b.Loop() {
		ctx, req := tr.StartKind(context.Background(), "GET", trace.SpanKindServer)
		req.SetAttributes(tracing.TenantKey.String("acme"))
		_, gate := tr.Start(ctx, "ingress.gate")
		gate.SetAttributes(tracing.ActionKey.String("record.read"), tracing.PrincipalKey.String("tenant_key"),
			tracing.TenantKey.String("acme"), attribute.Int64("bulkhead.admission.wait_us", 3),
			attribute.Int64("bulkhead.authentication_us", 9), attribute.Int64("bulkhead.authorization_us", 4))
		gate.End()
		_, tx := tr.StartKind(ctx, "store.tx", trace.SpanKindClient)
		tx.SetAttributes(tracing.TenantKey.String("acme"), attribute.String("bulkhead.store.shard", "local"),
			attribute.String("bulkhead.store.mode", "pooled"), attribute.Bool("bulkhead.store.read_only", true),
			attribute.String("db.system.name", "sqlite"))
		tx.End()
		req.SetName("GET /v1/collections/{c}/records/{id}")
		req.SetAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 200),
			attribute.String("http.route", "/v1/collections/{c}/records/{id}"), tracing.RequestIDKey.String("0123456789abcdef"))
		req.End()
	}
	if err := tp.ForceFlush(context.Background()); err != nil {
		b.Fatal(err)
	}
}
