package otlp

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// tracerProvider is the TracerProvider Setup makes when tracing is on:
// an implementation of the OpenTelemetry trace API of this package's own,
// lighter than the SDK's on a request's path. A span is one small
// allocation: what it records lives in a record from a pool (span.go),
// handed back once ending the span has encoded it, in OTLP's protobuf,
// straight into the batch the exporter sends, with no snapshot and no
// conversion. It keeps the SDK's rules where a span's content is
// concerned: the samplers (the SDK's own, from OTEL_TRACES_SAMPLER), the
// limits (sdktrace.NewSpanLimits, from OTEL_SPAN_*), a repeated attribute
// key keeping its first place and its last value, the oldest event or
// link evicted past its limit, a status of Ok not overwritten, nothing
// changed once a span has ended. TestProviderExportsWhatTheSDKExports
// holds it to that.
//
// What it leaves out: a panic through a deferred End is not recorded as
// an exception event (its message may quote data); nested slice and map
// values are truncated to the value length limit but their keys are not
// de-duplicated nor their depth limited.
type tracerProvider struct {
	embedded.TracerProvider

	sampler sdktrace.Sampler
	limits  sdktrace.SpanLimits
	ids     sdktrace.IDGenerator
	batch   *batcher
	stopped atomic.Bool

	mu      sync.Mutex
	tracers map[tracerKey]*tracer // guarded by mu
}

type tracerKey struct {
	name, version, schemaURL string
	attrs                    attribute.Distinct
}

func newTracerProvider(sampler sdktrace.Sampler, limits sdktrace.SpanLimits, batch *batcher) *tracerProvider {
	return &tracerProvider{sampler: sampler, limits: limits, ids: randomIDs{}, batch: batch,
		tracers: map[tracerKey]*tracer{}}
}

// Tracer returns the tracer of an instrumentation scope: the same one for
// the same name, version, schema and attributes.
func (p *tracerProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	c := trace.NewTracerConfig(opts...)
	attrs := c.InstrumentationAttributes()
	key := tracerKey{name: name, version: c.InstrumentationVersion(), schemaURL: c.SchemaURL(), attrs: attrs.Equivalent()}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.tracers[key]; ok {
		return t
	}
	scope := instrumentation.Scope{Name: name, Version: key.version, SchemaURL: key.schemaURL, Attributes: attrs}
	t := &tracer{p: p, scope: scope, enc: appendScope(nil, scope)}
	p.tracers[key] = t
	return t
}

// tracer starts spans of one instrumentation scope.
type tracer struct {
	embedded.Tracer
	p     *tracerProvider
	scope instrumentation.Scope
	enc   []byte // scope, encoded as ScopeSpans' scope field
}

// Start starts a span as the SDK's tracer does: the child of the span in
// ctx (unless trace.WithNewRoot), sampled as the sampler decides. A span
// the sampler drops does not record; it carries its ids so that the trace
// goes on downstream.
func (t *tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if ctx == nil {
		ctx = context.Background()
	}
	s := t.start(ctx, name, opts)
	return trace.ContextWithSpan(ctx, s), s
}

// StartLeaf is Start for a span that will have no children: it returns
// no context, and so allocates none (tracing.Tracer.StartLeaf uses it).
func (t *tracer) StartLeaf(ctx context.Context, name string, opts ...trace.SpanStartOption) trace.Span {
	if ctx == nil {
		ctx = context.Background()
	}
	return t.start(ctx, name, opts)
}

func (t *tracer) start(ctx context.Context, name string, opts []trace.SpanStartOption) trace.Span {
	c := trace.NewSpanStartConfig(opts...)
	pctx := ctx // the parent as the sampler sees it
	var psc trace.SpanContext
	if c.NewRoot() {
		pctx = trace.ContextWithSpanContext(ctx, psc)
	} else {
		psc = trace.SpanContextFromContext(ctx)
	}
	var tid trace.TraceID
	var sid trace.SpanID
	if psc.TraceID().IsValid() {
		tid, sid = psc.TraceID(), t.p.ids.NewSpanID(pctx, psc.TraceID())
	} else {
		tid, sid = t.p.ids.NewIDs(pctx)
	}
	decision := sdktrace.Drop
	var res sdktrace.SamplingResult
	if !t.p.stopped.Load() {
		res = t.p.sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: pctx, TraceID: tid,
			Name: name, Kind: c.SpanKind(), Attributes: c.Attributes(), Links: c.Links()})
		decision = res.Decision
	}
	flags := psc.TraceFlags() &^ trace.FlagsSampled
	if decision == sdktrace.RecordAndSample {
		flags |= trace.FlagsSampled
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, TraceState: res.Tracestate})
	if decision == sdktrace.Drop {
		return droppedSpan{sc: sc, p: t.p}
	}
	s := &span{t: t, sc: sc, parentID: psc.SpanID(), parentRemote: psc.IsRemote(), kind: trace.ValidateSpanKind(c.SpanKind()), name: name, start: c.Timestamp()}
	if s.start.IsZero() {
		s.start = time.Now()
	}
	s.rec = newRecord()
	for _, l := range c.Links() {
		s.AddLink(l)
	}
	s.SetAttributes(res.Attributes...)
	s.SetAttributes(c.Attributes()...)
	return s
}

// randomIDs makes trace and span ids from the runtime's random source
// (per-thread ChaCha8: no lock). They need not be secret, only unique.
type randomIDs struct{}

func (randomIDs) NewIDs(context.Context) (tid trace.TraceID, sid trace.SpanID) {
	for !tid.IsValid() {
		binary.LittleEndian.PutUint64(tid[:8], rand.Uint64())
		binary.LittleEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, newSpanID()
}

func (randomIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newSpanID() (sid trace.SpanID) {
	for !sid.IsValid() {
		binary.LittleEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
