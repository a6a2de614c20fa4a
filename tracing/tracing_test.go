package tracing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tracing"
	"github.com/bulkhead-dev/bulkhead/tracing/otlp"
)

// recorder is the real SDK with an in-memory span recorder.
func recorder(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, rec
}

// offProvider is what otlp.Setup returns when no OTEL_* variable turns
// tracing on.
func offProvider(t *testing.T) *otlp.Provider {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"} {
		t.Setenv(k, "")
	}
	tp, err := otlp.Setup(context.Background(), otlp.Options{})
	if err != nil || tp.Enabled() {
		t.Fatalf("Setup with no OTEL_* variable: enabled %v, %v", tp.Enabled(), err)
	}
	return tp
}

func TestTracingThatIsOffAllocatesNothing(t *testing.T) {
	id := tenant.MustParse("acme")
	for name, tr := range map[string]*tracing.Tracer{
		"the global provider, never set": tracing.NewTracer(nil),
		"a no-op provider":               tracing.NewTracer(noop.NewTracerProvider()),
		"a nil tracer":                   nil,
		"an OTLP provider that is off":   tracing.NewTracer(offProvider(t)),
	} {
		t.Run(name, func(t *testing.T) {
			if tr.Enabled() {
				t.Fatal("Enabled() is true")
			}
			ctx := context.Background()
			allocs := testing.AllocsPerRun(1000, func() {
				c, span := tr.StartKind(ctx, "store.tx", trace.SpanKindClient)
				if span.IsRecording() || c != ctx {
					t.Fatal("a span that is off records or changed the context")
				}
				tracing.SetTenant(c, id)
				tracing.Fail(span, "not_found")
				span.End()
				if leaf := tr.StartLeaf(ctx, "ingress.gate", trace.SpanKindInternal); leaf.IsRecording() {
					t.Fatal("a leaf span that is off records")
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per span, want 0", allocs)
			}
		})
	}
}

func TestTracerRecordsOnARealProvider(t *testing.T) {
	tp, rec := recorder(t)
	tr := tracing.NewTracer(tp)
	ctx, span := tr.Start(context.Background(), "step")
	if !span.IsRecording() || trace.SpanFromContext(ctx) != span {
		t.Fatal("the span does not record or is not in the returned context")
	}
	tracing.SetTenant(ctx, tenant.MustParse("acme"))
	tracing.Fail(span, "quota_exceeded")
	span.End()
	got := rec.Ended()
	if len(got) != 1 || got[0].Name() != "step" {
		t.Fatalf("ended spans %v", got)
	}
	want := map[attribute.Key]string{tracing.TenantKey: "acme", tracing.ProblemKey: "quota_exceeded"}
	for _, kv := range got[0].Attributes() {
		if w, ok := want[kv.Key]; ok && kv.Value.AsString() == w {
			delete(want, kv.Key)
		}
	}
	if len(want) != 0 || got[0].Status().Description != "quota_exceeded" {
		t.Errorf("missing attributes %v; status %v", want, got[0].Status())
	}
}

func TestLeafSpansAreChildrenOfTheSpanInTheContext(t *testing.T) {
	tp, rec := recorder(t) // the SDK: StartLeaf falls back to Start
	tr := tracing.NewTracer(tp)
	ctx, parent := tr.Start(context.Background(), "request")
	for _, kind := range []trace.SpanKind{trace.SpanKindClient, trace.SpanKindInternal, trace.SpanKind(42)} {
		leaf := tr.StartLeaf(ctx, "leaf", kind)
		if !leaf.IsRecording() {
			t.Fatal("a leaf span does not record")
		}
		leaf.End()
	}
	parent.End()
	ended := rec.Ended()
	if len(ended) != 4 {
		t.Fatalf("%d spans ended, want 4", len(ended))
	}
	for i, want := range []trace.SpanKind{trace.SpanKindClient, trace.SpanKindInternal, trace.SpanKindInternal} {
		s := ended[i]
		if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanKind() != want {
			t.Errorf("leaf %d: parent %v kind %v, want %v and %v", i, s.Parent().SpanID(), s.SpanKind(), parent.SpanContext().SpanID(), want)
		}
	}
}

// serve runs one request through Middleware on a ServeMux and returns the
// request span.
func serve(t *testing.T, tp trace.TracerProvider, rec *tracetest.SpanRecorder, target string, hdr map[string]string) sdktrace.ReadOnlySpan {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !trace.SpanFromContext(r.Context()).IsRecording() {
			t.Error("the handler's context has no recording span")
		}
		w.WriteHeader(http.StatusTeapot)
	})
	h := tracing.Middleware(tp, tracing.HTTPOptions{})(mux)
	r := httptest.NewRequest("GET", target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v) // set directly: no client validation of the value
	}
	h.ServeHTTP(httptest.NewRecorder(), r)
	ended := rec.Ended()
	if len(ended) == 0 {
		t.Fatal("no span ended")
	}
	return ended[len(ended)-1]
}

func TestMiddlewareJoinsAValidTraceparent(t *testing.T) {
	tp, rec := recorder(t)
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	s := serve(t, tp, rec, "/items/secret-id?q=secret-value", map[string]string{
		"traceparent": "00-" + tid + "-" + sid + "-01", "tracestate": "vendor=opaque"})
	if s.SpanContext().TraceID().String() != tid || s.Parent().SpanID().String() != sid || !s.Parent().IsRemote() {
		t.Errorf("trace %s parent %s, want %s %s", s.SpanContext().TraceID(), s.Parent().SpanID(), tid, sid)
	}
	if ts := s.SpanContext().TraceState().String(); ts != "" {
		t.Errorf("the client's tracestate %q reached the span (the exporter would carry it to the collector)", ts)
	}
	if s.Name() != "GET /items/{id}" || s.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q kind %v, want the route pattern, server", s.Name(), s.SpanKind())
	}
	for _, kv := range s.Attributes() {
		if strings.Contains(kv.Value.Emit(), "secret") {
			t.Errorf("attribute %s holds the raw path or query: %q", kv.Key, kv.Value.Emit())
		}
		if kv.Key == "http.response.status_code" && kv.Value.AsInt64() != http.StatusTeapot {
			t.Errorf("status %d", kv.Value.AsInt64())
		}
	}
}

func TestMiddlewareIgnoresMalformedTraceparents(t *testing.T) {
	tp, rec := recorder(t)
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for name, v := range map[string]string{
		"garbage":             "garbage",
		"control characters":  "00-" + tid + "-" + sid + "-01\x00\r\n",
		"oversized":           "00-" + tid + "-" + sid + "-01" + strings.Repeat("f", 1<<20),
		"all-zero trace id":   "00-" + strings.Repeat("0", 32) + "-" + sid + "-01",
		"version ff":          "ff-" + tid + "-" + sid + "-01",
		"short span id":       "00-" + tid + "-" + sid[:8] + "-01",
		"non-hex flags":       "00-" + tid + "-" + sid + "-zz",
		"extra after 00":      "00-" + tid + "-" + sid + "-01-00",
		"upper-case trace id": "00-" + strings.ToUpper(tid) + "-" + sid + "-01",
	} {
		t.Run(name, func(t *testing.T) {
			s := serve(t, tp, rec, "/items/1", map[string]string{"traceparent": v, "tracestate": "a=b,\x01=c"})
			if s.Parent().IsValid() || s.SpanContext().TraceID().String() == tid {
				t.Errorf("the span joined the malformed parent (trace %s, parent %s)", s.SpanContext().TraceID(), s.Parent().SpanID())
			}
			if !s.SpanContext().IsValid() {
				t.Error("no new trace was started")
			}
		})
	}
}

func TestMiddlewareThatIsOffLeavesTheRequestAlone(t *testing.T) {
	var got context.Context
	h := tracing.Middleware(nil, tracing.HTTPOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Context()
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if got != r.Context() {
		t.Error("tracing that is off changed the request's context")
	}
}
