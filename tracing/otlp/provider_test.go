package otlp

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-dev/bulkhead/tracing/otlptest"
)

// seqIDs makes the same ids in the same order for two providers; their
// low halves are spread, for the ratio sampler that reads them.
type seqIDs struct {
	mu sync.Mutex
	n  uint64
}

func (g *seqIDs) next() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	return g.n * 0x9E3779B97F4A7C15
}

func (g *seqIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	binary.BigEndian.PutUint64(tid[:8], g.next())
	binary.BigEndian.PutUint64(tid[8:], g.next())
	return tid, g.NewSpanID(ctx, tid)
}

func (g *seqIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	var sid trace.SpanID
	binary.BigEndian.PutUint64(sid[:], g.next())
	return sid
}

// script does with tp what instrumented code does, with every time given,
// so that two providers make the same spans: attributes of every type, a
// key set twice, an invalid one, more than the limits allow, values past
// the length limit, events and links past theirs, an error recorded,
// statuses that must not overwrite Ok, changes after End, two scopes,
// every kind, a remote parent sampled and one not, a new root, and roots
// enough for a ratio sampler to keep some and drop others.
func script(t *testing.T, tp trace.TracerProvider) {
	t.Helper()
	at := func(ms int) trace.SpanEventOption {
		return trace.WithTimestamp(time.Unix(1_700_000_000, 0).Add(time.Duration(ms) * time.Millisecond))
	}
	tr := tp.Tracer("github.com/bulkhead-dev/bulkhead")
	other := tp.Tracer("other", trace.WithInstrumentationVersion("1.2.3"), trace.WithSchemaURL("https://opentelemetry.io/schemas/1.26.0"),
		trace.WithInstrumentationAttributes(attribute.String("scope.attr", "x")))
	ts, err := trace.ParseTraceState("vendor=value")
	if err != nil {
		t.Fatal(err)
	}
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)

	ctx, root := tr.Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindServer), at(0),
		trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 500),
			attribute.Bool("b", true), attribute.Float64("f", 1.5), attribute.StringSlice("ss", []string{"a", "bcdefghij"}),
			attribute.Int64Slice("is", []int64{1, 2}), attribute.BoolSlice("bs", []bool{true}),
			attribute.Float64Slice("fs", []float64{0.5})))
	root.SetAttributes(attribute.String("http.request.method", "POST"), attribute.String("", "no key"),
		attribute.String("long", "abcdefghij"), attribute.String("wide", "ééééééééé"), attribute.String("extra1", "1"),
		attribute.String("extra2", "2"), attribute.String("http.request.method", "PUT"))
	root.SetName("GET /v1/collections/{c}/records/{id}")
	root.SetStatus(codes.Error, "failed")
	root.SetStatus(codes.Unset, "")

	cctx, gate := tr.Start(ctx, "ingress.gate", at(1))
	gate.AddEvent("authenticated", at(2), trace.WithAttributes(attribute.String("a", "1"), attribute.String("b", "2"),
		attribute.String("c", "3"), attribute.String("d", "4"), attribute.String("e", "too long for the limit")))
	for i := range 5 {
		gate.AddEvent(fmt.Sprint("step", i), at(3+i))
	}
	gate.RecordError(errors.New("denied"), at(9))
	gate.SetStatus(codes.Ok, "")
	gate.SetStatus(codes.Error, "must not replace Ok")
	gate.End(at(10))
	gate.SetAttributes(attribute.String("late", "x"))
	gate.AddEvent("late", at(11))
	gate.SetName("late")
	gate.End(at(12))

	_, tx := other.Start(cctx, "store.tx", trace.WithSpanKind(trace.SpanKindClient), at(13),
		trace.WithLinks(trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{8},
			TraceFlags: trace.FlagsSampled}), Attributes: []attribute.KeyValue{attribute.String("l1", "x"), attribute.String("l2", "y")}},
			trace.Link{}))
	for i := range 3 {
		tx.AddLink(trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{byte(10 + i)},
			SpanID: trace.SpanID{byte(20 + i)}, Remote: true})})
	}
	tx.SetStatus(codes.Error, "not_found")
	tx.End(at(14))
	for i, k := range []trace.SpanKind{trace.SpanKindProducer, trace.SpanKindConsumer, trace.SpanKindInternal, trace.SpanKind(42)} {
		_, s := tr.Start(ctx, "kind", trace.WithSpanKind(k), at(15+i))
		s.SetStatus(codes.Ok, "")
		s.End(at(20))
	}
	for i, k := range []trace.SpanKind{trace.SpanKindClient, trace.SpanKindInternal} {
		l := startLeaf(tr, cctx, "leaf", trace.WithSpanKind(k), at(23+i), trace.WithAttributes(attribute.String("l", "x")))
		l.SetAttributes(attribute.Int("i", i))
		l.End(at(25))
	}
	_, nr := tr.Start(ctx, "new root", trace.WithNewRoot(), at(21))
	nr.End(at(22))
	root.End(at(30))

	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{7}, Remote: true})
	_, u := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), unsampled), "unsampled parent", at(31))
	u.End(at(32))
	for range 200 {
		rctx, r := tr.Start(context.Background(), "root", at(40))
		_, c := tr.Start(rctx, "child", at(41))
		c.End(at(42))
		r.End(at(43))
	}
}

// leafStarter is what tracing.Tracer.StartLeaf looks for; our tracer is one.
type leafStarter interface {
	StartLeaf(ctx context.Context, name string, opts ...trace.SpanStartOption) trace.Span
}

var _ leafStarter = (*tracer)(nil)

// startLeaf starts a span as tracing.Tracer.StartLeaf does: without a
// context on a tracer that can (ours), with Start on one that cannot.
func startLeaf(tr trace.Tracer, ctx context.Context, name string, opts ...trace.SpanStartOption) trace.Span {
	if l, ok := tr.(leafStarter); ok {
		return l.StartLeaf(ctx, name, opts...)
	}
	_, s := tr.Start(ctx, name, opts...)
	return s
}

// spansOf flattens what a receiver decoded: each span, with its scope and
// resource, ordered by span id (the SDK's exporter below sends each span
// on its own; ours batches them).
func spansOf(msgs []*coltracepb.ExportTraceServiceRequest) []*tracepb.ResourceSpans {
	var out []*tracepb.ResourceSpans
	for _, m := range msgs {
		for _, rs := range m.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					out = append(out, &tracepb.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl,
						ScopeSpans: []*tracepb.ScopeSpans{{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl, Spans: []*tracepb.Span{s}}}})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b *tracepb.ResourceSpans) int {
		return cmp.Compare(string(a.ScopeSpans[0].Spans[0].SpanId), string(b.ScopeSpans[0].Spans[0].SpanId))
	})
	return out
}

// TestProviderExportsWhatTheSDKExports runs the same script on this
// package's provider and on the OpenTelemetry SDK's (with the same ids,
// the same limits, each reading its sampler from OTEL_TRACES_SAMPLER
// itself), each exporting over OTLP/HTTP to a real receiver, and compares
// what the receivers decoded, span by span, for every sampler.
func TestProviderExportsWhatTheSDKExports(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "10")
	t.Setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "6")
	t.Setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "4")
	t.Setenv("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "3")
	t.Setenv("OTEL_SPAN_LINK_COUNT_LIMIT", "2")
	t.Setenv("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "1")
	res := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0",
		attribute.String("service.name", "bulkhead"), attribute.String("service.version", "test"))
	for _, c := range []struct {
		sampler, arg string
		some         bool // some roots sampled, not all
	}{
		{"always_on", "", false}, {"", "", false}, {"parentbased_always_on", "", false},
		{"traceidratio", "0.3", true}, {"parentbased_traceidratio", "0.5", true},
		{"always_off", "", false}, {"parentbased_always_off", "", false},
	} {
		t.Run(c.sampler+c.arg, func(t *testing.T) {
			t.Setenv("OTEL_TRACES_SAMPLER", c.sampler)
			t.Setenv("OTEL_TRACES_SAMPLER_ARG", c.arg)
			ctx := context.Background()
			ours, theirs := otlptest.NewReceiver(t), otlptest.NewReceiver(t)

			sampler, err := samplerFromEnv()
			if err != nil {
				t.Fatal(err)
			}
			exp, err := newExporter(ctx, otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(ours.URL+"/v1/traces")), res)
			if err != nil {
				t.Fatal(err)
			}
			tp := newTracerProvider(sampler, sdktrace.NewSpanLimits(), newBatcher(exp))
			tp.ids = &seqIDs{}
			script(t, tp)
			if err := (&Provider{TracerProvider: tp, tp: tp}).Shutdown(ctx); err != nil {
				t.Fatal(err)
			}

			ref, err := otlptrace.New(ctx, otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(theirs.URL+"/v1/traces")))
			if err != nil {
				t.Fatal(err)
			}
			sdk := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(ref), sdktrace.WithIDGenerator(&seqIDs{}))
			script(t, sdk)
			if err := sdk.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}

			got, want := spansOf(ours.Messages()), spansOf(theirs.Messages())
			if len(got) != len(want) {
				t.Fatalf("%d spans exported, the SDK exported %d", len(got), len(want))
			}
			for i := range want {
				if !proto.Equal(got[i], want[i]) {
					t.Fatalf("span %d differs from the SDK's:\n got %s\nwant %s", i, prototext.Format(got[i]), prototext.Format(want[i]))
				}
			}
			roots := 0
			for _, s := range got {
				if s.ScopeSpans[0].Spans[0].Name == "root" {
					roots++
				}
			}
			if c.some && (roots == 0 || roots == 200) {
				t.Errorf("the ratio sampler kept %d roots of 200", roots)
			}
			if c.sampler == "always_off" && len(got) != 0 {
				t.Errorf("always_off exported %d spans", len(got))
			}
		})
	}
}
