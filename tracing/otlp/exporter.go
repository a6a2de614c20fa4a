package otlp

import (
	"context"
	"fmt"
	"math"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// exporter is a span exporter that hands spans to an OTLP client (the
// otlptracehttp one, which reads the OTEL_EXPORTER_OTLP_* variables, marshals,
// compresses, sends and retries) as the SDK's otlptrace exporter does, but
// converts them into OTLP's protobuf messages without allocating a message
// per span, attribute and value for every batch: the messages of one batch
// are reused for the next, once the client has marshalled and sent it. The
// request it sends is the one otlptrace's exporter would send (exporter_test
// compares the two as a receiver decodes them). Exports are serialized.
type exporter struct {
	client otlptrace.Client

	mu sync.Mutex // serializes exports; guards what follows
	// The messages of the batch being converted, reused batch after batch.
	resources arena[tracepb.ResourceSpans]
	scopes    arena[tracepb.ScopeSpans]
	spans     arena[tracepb.Span]
	statuses  arena[tracepb.Status]
	events    arena[tracepb.Span_Event]
	kvs       arena[commonpb.KeyValue]
	values    arena[commonpb.AnyValue]
	strs      arena[commonpb.AnyValue_StringValue]
	ints      arena[commonpb.AnyValue_IntValue]
	bools     arena[commonpb.AnyValue_BoolValue]
	doubles   arena[commonpb.AnyValue_DoubleValue]
	kvPtrs    []*commonpb.KeyValue
	eventPtrs []*tracepb.Span_Event
	spanPtrs  []*tracepb.Span
	ids       []byte
	out       []*tracepb.ResourceSpans
	outRes    []*resource.Resource // the resource of each of out

	groups  []spanGroup               // the batch's groups, reused
	members [][]sdktrace.ReadOnlySpan // the spans of each group, reused

	// Converted once and kept: the resource and scopes seen last (a
	// provider has one resource and Bulkhead one scope).
	lastRes   *resource.Resource
	lastResPB *resourcepb.Resource
	scopePB   map[instrumentation.Scope]*commonpb.InstrumentationScope
}

var _ sdktrace.SpanExporter = (*exporter)(nil)

// newExporter returns an exporter sending through client, started.
func newExporter(ctx context.Context, client otlptrace.Client) (*exporter, error) {
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	return &exporter{client: client, scopePB: map[instrumentation.Scope]*commonpb.InstrumentationScope{}}, nil
}

// ExportSpans converts spans and uploads them in one request.
func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	rss := e.convert(spans)
	if len(rss) == 0 {
		return nil
	}
	err := e.client.UploadTraces(ctx, rss)
	e.release()
	if err != nil {
		return fmt.Errorf("traces export: %w", err)
	}
	return nil
}

// Shutdown stops the client: an export under way is interrupted.
func (e *exporter) Shutdown(ctx context.Context) error {
	return e.client.Stop(ctx)
}

// release makes the batch's messages reusable, dropping what they point to
// (span names, attribute strings) so the garbage collector can have it.
func (e *exporter) release() {
	e.resources.reset()
	e.scopes.reset()
	e.spans.reset()
	e.statuses.reset()
	e.events.reset()
	e.kvs.reset()
	e.values.reset()
	e.strs.reset()
	e.ints.reset()
	e.bools.reset()
	e.doubles.reset()
	clear(e.kvPtrs)
	e.kvPtrs = e.kvPtrs[:0]
	clear(e.eventPtrs)
	e.eventPtrs = e.eventPtrs[:0]
	clear(e.spanPtrs)
	e.spanPtrs = e.spanPtrs[:0]
	e.ids = e.ids[:0]
	clear(e.out)
	e.out = e.out[:0]
	clear(e.groups)
	e.groups = e.groups[:0]
	for i := range e.members {
		clear(e.members[i])
		e.members[i] = e.members[i][:0]
	}
	clear(e.outRes)
	e.outRes = e.outRes[:0]
}

// convert groups spans by resource and instrumentation scope, in the order
// first seen, and converts them.
func (e *exporter) convert(spans []sdktrace.ReadOnlySpan) []*tracepb.ResourceSpans {
	// Bulkhead's batches hold one group: find each span's by a linear scan.
	groups, members := e.groups[:0], e.members[:0]
	for _, s := range spans {
		if s == nil {
			continue
		}
		g := spanGroup{res: s.Resource(), scope: s.InstrumentationScope()}
		i := 0
		for ; i < len(groups); i++ {
			if groups[i].scope == g.scope && sameResource(groups[i].res, g.res) {
				break
			}
		}
		if i == len(groups) {
			groups = append(groups, g)
			if len(members) < cap(members) {
				members = members[:len(members)+1]
				members[i] = members[i][:0]
			} else {
				members = append(members, nil)
			}
		}
		members[i] = append(members[i], s)
	}
	for i, g := range groups {
		var rs *tracepb.ResourceSpans
		for j, r := range e.outRes {
			if sameResource(r, g.res) {
				rs = e.out[j]
				break
			}
		}
		if rs == nil {
			rs = e.resources.next()
			rs.Resource = e.resource(g.res)
			rs.SchemaUrl = g.res.SchemaURL()
			e.out = append(e.out, rs)
			e.outRes = append(e.outRes, g.res)
		}
		ss := e.scopes.next()
		ss.Scope = e.scope(g.scope)
		ss.SchemaUrl = g.scope.SchemaURL
		start := len(e.spanPtrs)
		for _, s := range members[i] {
			e.spanPtrs = append(e.spanPtrs, e.span(s))
		}
		ss.Spans = e.spanPtrs[start:len(e.spanPtrs):len(e.spanPtrs)]
		rs.ScopeSpans = append(rs.ScopeSpans, ss)
	}
	e.groups, e.members = groups, members
	return e.out
}

// spanGroup is the resource and scope that spans exported together share.
type spanGroup struct {
	res   *resource.Resource
	scope instrumentation.Scope
}

func sameResource(a, b *resource.Resource) bool {
	return a == b || a.Equivalent() == b.Equivalent()
}

// resource converts r, once for the provider's resource.
func (e *exporter) resource(r *resource.Resource) *resourcepb.Resource {
	if r == nil {
		return nil
	}
	if r == e.lastRes {
		return e.lastResPB
	}
	pb := &resourcepb.Resource{Attributes: freshKeyValues(r.Attributes())}
	e.lastRes, e.lastResPB = r, pb
	return pb
}

// scope converts an instrumentation scope, once.
func (e *exporter) scope(s instrumentation.Scope) *commonpb.InstrumentationScope {
	if s == (instrumentation.Scope{}) {
		return nil
	}
	if pb, ok := e.scopePB[s]; ok {
		return pb
	}
	pb := &commonpb.InstrumentationScope{Name: s.Name, Version: s.Version, Attributes: freshKeyValues(s.Attributes.ToSlice())}
	if len(e.scopePB) > 64 { // scopes are few; never let a stream of them grow the map
		clear(e.scopePB)
	}
	e.scopePB[s] = pb
	return pb
}

// span converts one span into reused messages.
func (e *exporter) span(s sdktrace.ReadOnlySpan) *tracepb.Span {
	sc := s.SpanContext()
	p := e.spans.next()
	tid, sid := sc.TraceID(), sc.SpanID()
	p.TraceId = e.id(tid[:])
	p.SpanId = e.id(sid[:])
	p.TraceState = sc.TraceState().String()
	parent := s.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		p.ParentSpanId = e.id(psid[:])
	}
	p.Flags = spanFlags(sc.TraceFlags(), parent)
	p.Name = s.Name()
	p.Kind = spanKind(s.SpanKind())
	p.StartTimeUnixNano = uint64(max(0, s.StartTime().UnixNano()))
	p.EndTimeUnixNano = uint64(max(0, s.EndTime().UnixNano()))
	p.Attributes = e.keyValues(s.Attributes())
	p.DroppedAttributesCount = clampUint32(s.DroppedAttributes())
	if evs := s.Events(); len(evs) > 0 {
		start := len(e.eventPtrs)
		for _, ev := range evs {
			pe := e.events.next()
			pe.Name = ev.Name
			pe.TimeUnixNano = uint64(max(0, ev.Time.UnixNano()))
			pe.Attributes = e.keyValues(ev.Attributes)
			pe.DroppedAttributesCount = clampUint32(ev.DroppedAttributeCount)
			e.eventPtrs = append(e.eventPtrs, pe)
		}
		p.Events = e.eventPtrs[start:len(e.eventPtrs):len(e.eventPtrs)]
	}
	p.DroppedEventsCount = clampUint32(s.DroppedEvents())
	p.Links = links(s.Links())
	p.DroppedLinksCount = clampUint32(s.DroppedLinks())
	st := s.Status()
	ps := e.statuses.next()
	ps.Code = statusCode(st.Code)
	ps.Message = st.Description
	p.Status = ps
	return p
}

// id copies a trace or span id into the batch's id buffer. The buffer may
// be reallocated as it grows: earlier ids keep the array they were copied
// into.
func (e *exporter) id(b []byte) []byte {
	start := len(e.ids)
	e.ids = append(e.ids, b...)
	return e.ids[start:len(e.ids):len(e.ids)]
}

// keyValues converts attributes into reused messages; nil if none.
func (e *exporter) keyValues(attrs []attribute.KeyValue) []*commonpb.KeyValue {
	if len(attrs) == 0 {
		return nil
	}
	start := len(e.kvPtrs)
	for _, a := range attrs {
		kv := e.kvs.next()
		kv.Key = string(a.Key)
		kv.Value = e.value(a.Value)
		e.kvPtrs = append(e.kvPtrs, kv)
	}
	return e.kvPtrs[start:len(e.kvPtrs):len(e.kvPtrs)]
}

// value converts a scalar into reused messages, anything else into new ones.
func (e *exporter) value(v attribute.Value) *commonpb.AnyValue {
	av := e.values.next()
	switch v.Type() {
	case attribute.STRING:
		w := e.strs.next()
		w.StringValue = v.AsString()
		av.Value = w
	case attribute.INT64:
		w := e.ints.next()
		w.IntValue = v.AsInt64()
		av.Value = w
	case attribute.BOOL:
		w := e.bools.next()
		w.BoolValue = v.AsBool()
		av.Value = w
	case attribute.FLOAT64:
		w := e.doubles.next()
		w.DoubleValue = v.AsFloat64()
		av.Value = w
	default:
		av.Value = freshValue(v).Value
	}
	return av
}

func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	// The low 8 bits are the W3C trace flags; the exporter always says
	// whether it knows the parent is remote.
	flags := uint32(tf) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if parent.IsRemote() {
		flags |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	return flags
}

func spanKind(k trace.SpanKind) tracepb.Span_SpanKind {
	switch k {
	case trace.SpanKindInternal:
		return tracepb.Span_SPAN_KIND_INTERNAL
	case trace.SpanKindClient:
		return tracepb.Span_SPAN_KIND_CLIENT
	case trace.SpanKindServer:
		return tracepb.Span_SPAN_KIND_SERVER
	case trace.SpanKindProducer:
		return tracepb.Span_SPAN_KIND_PRODUCER
	case trace.SpanKindConsumer:
		return tracepb.Span_SPAN_KIND_CONSUMER
	}
	return tracepb.Span_SPAN_KIND_UNSPECIFIED
}

func statusCode(c codes.Code) tracepb.Status_StatusCode {
	switch c {
	case codes.Ok:
		return tracepb.Status_STATUS_CODE_OK
	case codes.Error:
		return tracepb.Status_STATUS_CODE_ERROR
	}
	return tracepb.Status_STATUS_CODE_UNSET
}

func clampUint32(v int) uint32 {
	if v < 0 {
		return 0
	}
	if int64(v) > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}
