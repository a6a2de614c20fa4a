package otlp

import (
	"cmp"
	"context"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-dev/bulkhead/tracing/otlptest"
)

// recordBatch makes spans of every shape the exporter converts, on a
// provider of its own (resource res), and returns them as ended. With
// small, the spans are fewer and barer than a first batch's, so that a
// message reused from the first would show what it kept.
func recordBatch(t *testing.T, res *resource.Resource, small bool) []sdktrace.ReadOnlySpan {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tr := tp.Tracer("github.com/bulkhead-dev/bulkhead")
	other := tp.Tracer("other", trace.WithInstrumentationVersion("1.2.3"),
		trace.WithInstrumentationAttributes(attribute.String("scope.attr", "x")))

	if small {
		_, s := tr.Start(context.Background(), "small")
		s.End()
		return rec.Ended()
	}
	ts, err := trace.ParseTraceState("vendor=value")
	if err != nil {
		t.Fatal(err)
	}
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
	ctx, root := tr.Start(ctx, "GET /v1/collections/{c}/records/{id}", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 500),
			attribute.Bool("b", true), attribute.Float64("f", 1.5), attribute.StringSlice("ss", []string{"a", "b"}),
			attribute.Int64Slice("is", []int64{1, 2}), attribute.BoolSlice("bs", []bool{true}),
			attribute.Float64Slice("fs", []float64{0.5})))
	root.SetStatus(codes.Error, "")
	cctx, gate := tr.Start(ctx, "ingress.gate")
	gate.AddEvent("authenticated", trace.WithAttributes(attribute.String("bulkhead.principal.kind", "tenant_key")))
	gate.AddEvent("authorized")
	gate.AddEvent("admitted", trace.WithTimestamp(time.Unix(1, 2)))
	gate.End()
	_, tx := other.Start(cctx, "store.tx", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithLinks(trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{9}, SpanID: trace.SpanID{8}, TraceFlags: trace.FlagsSampled}),
			Attributes: []attribute.KeyValue{attribute.String("link", "l")}}))
	tx.SetStatus(codes.Error, "not_found")
	tx.End()
	for _, k := range []trace.SpanKind{trace.SpanKindProducer, trace.SpanKindConsumer} {
		_, s := tr.Start(ctx, "kind", trace.WithSpanKind(k))
		s.SetStatus(codes.Ok, "")
		s.End()
	}
	root.End()
	return rec.Ended()
}

// sortScopes orders each resource's scopes by name: otlptrace groups
// them through a map, in no fixed order.
func sortScopes(msgs []*coltracepb.ExportTraceServiceRequest) {
	for _, m := range msgs {
		for _, rs := range m.GetResourceSpans() {
			slices.SortFunc(rs.ScopeSpans, func(a, b *tracepb.ScopeSpans) int {
				return cmp.Compare(a.GetScope().GetName(), b.GetScope().GetName())
			})
		}
	}
}

// TestExporterSendsWhatOtlptraceSends exports the same batches through the
// exporter and through the SDK's otlptrace exporter, each to a real
// OTLP/HTTP receiver, and compares the requests as the receivers decoded
// them: ids, parents, the remote flag and trace state, names, kinds, times,
// attributes of every type, events with their attributes, links, status,
// scopes and resource. The second and third batches reuse the first's
// messages: what a span of the first held must not show in them.
func TestExporterSendsWhatOtlptraceSends(t *testing.T) {
	ctx := context.Background()
	res := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0",
		attribute.String("service.name", "bulkhead"), attribute.String("service.version", "test"))
	ours, theirs := otlptest.NewReceiver(t), otlptest.NewReceiver(t)
	exp, err := newExporter(ctx, otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(ours.URL+"/v1/traces")))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := otlptrace.New(ctx, otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(theirs.URL+"/v1/traces")))
	if err != nil {
		t.Fatal(err)
	}
	other := resource.NewSchemaless(attribute.String("service.name", "other"))
	batches := [][]sdktrace.ReadOnlySpan{
		recordBatch(t, res, false),
		recordBatch(t, res, true),
		append(recordBatch(t, res, false), recordBatch(t, other, true)...), // two resources
	}
	for _, b := range batches {
		if err := exp.ExportSpans(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := ref.ExportSpans(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	got, want := ours.Messages(), theirs.Messages()
	if len(got) != len(batches) || len(want) != len(batches) {
		t.Fatalf("requests: ours %d, otlptrace's %d, want %d each", len(got), len(want), len(batches))
	}
	sortScopes(got)
	sortScopes(want)
	for i := range want {
		// otlptrace groups resources through a map too.
		for _, m := range []*coltracepb.ExportTraceServiceRequest{got[i], want[i]} {
			slices.SortFunc(m.ResourceSpans, func(a, b *tracepb.ResourceSpans) int {
				return cmp.Compare(len(b.GetScopeSpans()), len(a.GetScopeSpans()))
			})
		}
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("batch %d differs from otlptrace's:\n got %s\nwant %s", i, prototext.Format(got[i]), prototext.Format(want[i]))
		}
	}
	if n := len(ours.Spans()); n != 2*5+2 {
		t.Errorf("the receiver decoded %d spans, want %d", n, 2*5+2)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_ = ref.Shutdown(ctx)
}

// TestExporterReportsFailure: a receiver that refuses the request is an
// error, and the batch is let go after it.
func TestExporterReportsFailure(t *testing.T) {
	ctx := context.Background()
	exp, err := newExporter(ctx, otlptracehttp.NewClient(otlptracehttp.WithEndpointURL("http://127.0.0.1:1/v1/traces"),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false})))
	if err != nil {
		t.Fatal(err)
	}
	spans := recordBatch(t, resource.Empty(), false)
	if err := exp.ExportSpans(ctx, spans); err == nil {
		t.Fatal("an export to a closed port succeeded")
	}
	if len(exp.buf) != 0 || len(exp.msgs) != 1 || len(exp.msgs[0].ProtoReflect().GetUnknown()) != 0 || len(exp.members[0]) != 0 {
		t.Errorf("after a failed export the batch is still held: %d bytes, %d messages", len(exp.buf), len(exp.msgs))
	}
	if err := exp.ExportSpans(ctx, nil); err != nil {
		t.Errorf("an empty batch: %v", err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := exp.ExportSpans(ctx, spans); err == nil {
		t.Error("an export after Shutdown succeeded")
	}
}
