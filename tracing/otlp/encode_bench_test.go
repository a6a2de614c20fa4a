package otlp

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// BenchmarkEncode is the encoding of a batch of 510 spans (a data-plane
// GET's three, 170 times; the default batch is 512), as ending them and
// the exporter do it, and the marshalling otlptracehttp's client does of
// the result: per span.
func BenchmarkEncode(b *testing.B) {
	exp := &exporter{res: appendResource(nil, resource.NewSchemaless(attribute.String("service.name", "bulkhead"))),
		msgs: []*tracepb.ResourceSpans{{}}}
	tp := newTracerProvider(sdktrace.AlwaysSample(), sdktrace.NewSpanLimits(), nil)
	tr := tp.Tracer("github.com/bulkhead-dev/bulkhead")
	var spans []*span
	start := func(ctx context.Context, name string, kind trace.SpanKind) (context.Context, *span) {
		ctx, s := tr.Start(ctx, name, trace.WithSpanKind(kind))
		spans = append(spans, s.(*span))
		return ctx, s.(*span)
	}
	for range 512 / 3 { // the spans of a GET, as BenchmarkRequestSpans makes them
		ctx, req := start(context.Background(), "GET /v1/collections/{c}/records/{id}", trace.SpanKindServer)
		_, gate := start(ctx, "ingress.gate", trace.SpanKindInternal)
		gate.SetAttributes(attribute.String("bulkhead.action", "record.read"), attribute.String("bulkhead.principal.kind", "tenant_key"),
			attribute.String("bulkhead.tenant", "acme"), attribute.Int64("bulkhead.admission.wait_us", 3),
			attribute.Int64("bulkhead.authentication_us", 9), attribute.Int64("bulkhead.authorization_us", 4))
		_, tx := start(ctx, "store.tx", trace.SpanKindClient)
		tx.SetAttributes(attribute.String("bulkhead.tenant", "acme"), attribute.String("bulkhead.store.shard", "local"),
			attribute.String("bulkhead.store.mode", "pooled"), attribute.Bool("bulkhead.store.read_only", true),
			attribute.String("db.system.name", "sqlite"))
		req.SetAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 200),
			attribute.String("http.route", "/v1/collections/{c}/records/{id}"), attribute.String("bulkhead.request_id", "0123456789abcdef"),
			attribute.String("bulkhead.tenant", "acme"))
	}
	for _, s := range spans { // ended, without a batcher to hand them to
		s.end = s.start
	}
	var bt batch
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		bt.reset()
		for _, s := range spans {
			bt.add(s, s.rec)
		}
		buf = exp.assemble(buf[:0], &bt)
		exp.msgs[0].ProtoReflect().SetUnknown(protoreflect.RawFields(buf))
		if _, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: exp.msgs}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(spans)), "ns/span")
}
