package otlp

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// BenchmarkEncode is the exporter's encoding of a batch of 510 spans (a
// data-plane GET's three, 170 times; the default batch is 512) (and the marshalling otlptracehttp's client
// does of the result): per span.
func BenchmarkEncode(b *testing.B) {
	res := resource.NewSchemaless(attribute.String("service.name", "bulkhead"))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(rec))
	tr := tp.Tracer("github.com/bulkhead-dev/bulkhead")
	for range 512 / 3 { // the spans of a GET, as BenchmarkRequestSpans makes them
		ctx, req := tr.Start(context.Background(), "GET /v1/collections/{c}/records/{id}", trace.WithSpanKind(trace.SpanKindServer))
		_, gate := tr.Start(ctx, "ingress.gate")
		gate.SetAttributes(attribute.String("bulkhead.action", "record.read"), attribute.String("bulkhead.principal.kind", "tenant_key"),
			attribute.String("bulkhead.tenant", "acme"), attribute.Int64("bulkhead.admission.wait_us", 3),
			attribute.Int64("bulkhead.authentication_us", 9), attribute.Int64("bulkhead.authorization_us", 4))
		gate.End()
		_, tx := tr.Start(ctx, "store.tx", trace.WithSpanKind(trace.SpanKindClient))
		tx.SetAttributes(attribute.String("bulkhead.tenant", "acme"), attribute.String("bulkhead.store.shard", "local"),
			attribute.String("bulkhead.store.mode", "pooled"), attribute.Bool("bulkhead.store.read_only", true),
			attribute.String("db.system.name", "sqlite"))
		tx.End()
		req.SetAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 200),
			attribute.String("http.route", "/v1/collections/{c}/records/{id}"), attribute.String("bulkhead.request_id", "0123456789abcdef"),
			attribute.String("bulkhead.tenant", "acme"))
		req.End()
	}
	spans := rec.Ended()
	e := &exporter{scopeEnc: map[instrumentation.Scope][]byte{}}
	b.ReportAllocs()
	for b.Loop() {
		msgs := e.encode(spans)
		if _, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: msgs}); err != nil {
			b.Fatal(err)
		}
		e.release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(spans)), "ns/span")
}
