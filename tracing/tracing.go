package tracing

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// InstrumentationName names Bulkhead's tracer (the instrumentation scope
// of every span it makes).
const InstrumentationName = "github.com/bulkhead-dev/bulkhead"

// The attributes Bulkhead puts on its spans. None holds a token, a header
// value, a path, a query, a body, a record id, a collection name or an SQL
// argument (see the package documentation).
const (
	// TenantKey is the tenant a span acts for, where it is known: the
	// credential's tenant, a support agent's act-as tenant once its grant
	// is checked, the tenant an operator's control-plane request names.
	TenantKey = attribute.Key("bulkhead.tenant")
	// ProblemKey is the stable problem code of a refused or failed
	// request or step (package problem), such as "unauthenticated".
	ProblemKey = attribute.Key("bulkhead.problem.code")
	// RequestIDKey is the server's own request id (X-Request-ID).
	RequestIDKey = attribute.Key("bulkhead.request_id")
	// ActionKey is the policy action of a route, such as "record.read".
	ActionKey = attribute.Key("bulkhead.action")
	// PrincipalKey is the kind of principal a credential names:
	// tenant_key, tenant_user, support, operator or analyst (never its id
	// or token).
	PrincipalKey = attribute.Key("bulkhead.principal.kind")
	// DecisionKey is the outcome of a step that refused a request: deny
	// (policy), throttled (rate limit) or refused (admission). A step that
	// let the request in does not carry it.
	DecisionKey = attribute.Key("bulkhead.decision")
)

// Tracer starts Bulkhead's spans on a TracerProvider, or on the global one
// (otel.GetTracerProvider) when made with nil. While tracing is off — the
// provider is a no-op, or the global one was never set — Start returns the
// context it was given and a non-recording span, allocating nothing. A nil
// *Tracer is off. It is safe for concurrent use.
type Tracer struct {
	tp     trace.TracerProvider // nil: the global provider
	tracer trace.Tracer         // tp's tracer; nil if tp is a no-op
	global atomic.Pointer[globalTracer]
}

// globalTracer caches the global provider's tracer.
type globalTracer struct {
	tp     trace.TracerProvider
	tracer trace.Tracer
}

// unsetGlobal is the global provider before anyone sets one: it delegates
// to the provider set later, and traces nothing until then.
var unsetGlobal = otel.GetTracerProvider()

// noSpan is the non-recording span of an empty context.
var noSpan = trace.SpanFromContext(context.Background())

// NewTracer returns a Tracer on tp, or on the global provider if tp is nil.
func NewTracer(tp trace.TracerProvider) *Tracer {
	t := &Tracer{tp: tp}
	if tp != nil && !isNoop(tp) {
		t.tracer = tp.Tracer(InstrumentationName)
	}
	return t
}

// isNoop reports whether tp traces nothing: a no-op provider, the unset
// global one, or one that says it is off (Enabled() false, as a
// tracing/otlp.Provider does when no OTEL_* variable turns it on).
func isNoop(tp trace.TracerProvider) bool {
	switch tp := tp.(type) {
	case noop.TracerProvider, *noop.TracerProvider:
		return true
	case interface{ Enabled() bool }:
		return !tp.Enabled()
	}
	return tp == unsetGlobal
}

// current returns the tracer to start spans with, or nil when tracing is
// off.
func (t *Tracer) current() trace.Tracer {
	if t == nil {
		return nil
	}
	if t.tp != nil {
		return t.tracer
	}
	tp := otel.GetTracerProvider()
	if isNoop(tp) {
		return nil
	}
	if g := t.global.Load(); g != nil && g.tp == tp {
		return g.tracer
	}
	g := &globalTracer{tp: tp, tracer: tp.Tracer(InstrumentationName)}
	t.global.Store(g)
	return g.tracer
}

// Enabled reports whether spans started now may be recorded.
func (t *Tracer) Enabled() bool { return t.current() != nil }

// Start starts an internal span named name as a child of the span in ctx.
// Set attributes on it only if span.IsRecording(), so that tracing that is
// off costs nothing.
func (t *Tracer) Start(ctx context.Context, name string) (context.Context, trace.Span) {
	return t.StartKind(ctx, name, trace.SpanKindInternal)
}

// StartKind is Start for a span of another kind (server, client...). It
// takes no options: options built by a caller would be allocated whether
// tracing is on or off.
func (t *Tracer) StartKind(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	tr := t.current()
	if tr == nil {
		return ctx, noSpan
	}
	if int(kind) < len(kindOptions) {
		return tr.Start(ctx, name, kindOptions[kind]...)
	}
	return tr.Start(ctx, name, trace.WithSpanKind(kind))
}

// StartLeaf is StartKind for a span that will have no children: it
// returns no context. A provider that can start a span without making a
// context for it (tracing/otlp's) then allocates none.
func (t *Tracer) StartLeaf(ctx context.Context, name string, kind trace.SpanKind) trace.Span {
	tr := t.current()
	if tr == nil {
		return noSpan
	}
	var opts []trace.SpanStartOption
	if int(kind) < len(kindOptions) {
		opts = kindOptions[kind]
	} else {
		opts = []trace.SpanStartOption{trace.WithSpanKind(kind)}
	}
	if l, ok := tr.(leafStarter); ok {
		return l.StartLeaf(ctx, name, opts...)
	}
	_, span := tr.Start(ctx, name, opts...)
	return span
}

// leafStarter is a tracer that can start a span without a context.
type leafStarter interface {
	StartLeaf(ctx context.Context, name string, opts ...trace.SpanStartOption) trace.Span
}

// StartAt is Start for a span that began at start, earlier: a step
// recorded once it has ended. Its option is allocated only when tracing
// is on.
func (t *Tracer) StartAt(ctx context.Context, name string, start time.Time) (context.Context, trace.Span) {
	tr := t.current()
	if tr == nil {
		return ctx, noSpan
	}
	return tr.Start(ctx, name, trace.WithTimestamp(start))
}

// kindOptions are the start options of each span kind, made once: an
// option made per span is an allocation (boxed in an interface, in a
// variadic slice that escapes through the Tracer interface).
var kindOptions = func() [][]trace.SpanStartOption {
	out := make([][]trace.SpanStartOption, trace.SpanKindConsumer+1)
	for k := range out {
		if trace.SpanKind(k) != trace.SpanKindInternal {
			out[k] = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKind(k))}
		}
	}
	return out
}()

// SetTenant puts the tenant on the span in ctx, if it records and id is
// not zero.
func SetTenant(ctx context.Context, id tenant.ID) {
	if id.IsZero() {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		set(span, TenantKey.String(id.String()))
	}
}

// set sets one attribute on span, through a Scratch slice: the slice of a
// variadic call would be an allocation of its own.
func set(span trace.Span, kv attribute.KeyValue) {
	attrs := append(Scratch(), kv)
	span.SetAttributes(attrs...)
	Release(attrs)
}

// RecordProblem puts a problem code on the span in ctx, if it records.
func RecordProblem(ctx context.Context, code string) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		set(span, ProblemKey.String(code))
	}
}

// Fail marks span as failed with a stable code (a problem code, or a class
// of error such as "not_found"), never an error's message, which may hold
// data. It does nothing on a span that does not record.
func Fail(span trace.Span, code string) {
	if !span.IsRecording() {
		return
	}
	set(span, ProblemKey.String(code))
	span.SetStatus(codes.Error, code)
}

// scratch holds the arrays Scratch lends.
var scratch = sync.Pool{New: func() any { return new([16]attribute.KeyValue) }}

// Scratch returns an empty slice with room for 16 attributes, from a pool,
// to gather a span's attributes for one SetAttributes call (which copies
// them: the slice a variadic call through the Span interface makes would
// be an allocation of its own). Hand it back with Release after the call.
func Scratch() []attribute.KeyValue { return scratch.Get().(*[16]attribute.KeyValue)[:0] }

// Release hands back a slice from Scratch, emptied. One that grew past 16
// attributes is no longer the pool's and is left to the collector.
func Release(attrs []attribute.KeyValue) {
	if cap(attrs) != 16 {
		return
	}
	a := (*[16]attribute.KeyValue)(attrs[:16])
	clear(a[:])
	scratch.Put(a)
}
