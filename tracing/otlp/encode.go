package otlp

import (
	"math"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// The OTLP protobuf encoding of spans, appended with protowire: the field
// numbers are those of opentelemetry/proto/trace/v1/trace.proto,
// common/v1/common.proto and resource/v1/resource.proto. A field whose
// value is proto3's default is left out, as the generated code does; a
// oneof's value (AnyValue's) and a span's status are always written, as
// otlptrace's exporter sets them.

// Field numbers.
const (
	// ResourceSpans
	fResourceSpansResource  = 1
	fResourceSpansScopes    = 2
	fResourceSpansSchemaURL = 3
	// Resource
	fResourceAttributes = 1
	// ScopeSpans
	fScopeSpansScope     = 1
	fScopeSpansSpans     = 2
	fScopeSpansSchemaURL = 3
	// InstrumentationScope
	fScopeName       = 1
	fScopeVersion    = 2
	fScopeAttributes = 3
	// Span
	fSpanTraceID        = 1
	fSpanSpanID         = 2
	fSpanTraceState     = 3
	fSpanParentSpanID   = 4
	fSpanName           = 5
	fSpanKind           = 6
	fSpanStart          = 7
	fSpanEnd            = 8
	fSpanAttributes     = 9
	fSpanDroppedAttrs   = 10
	fSpanEvents         = 11
	fSpanDroppedEvents  = 12
	fSpanLinks          = 13
	fSpanDroppedLinks   = 14
	fSpanStatus         = 15
	fSpanFlags          = 16
	fEventTime          = 1
	fEventName          = 2
	fEventAttributes    = 3
	fEventDroppedAttrs  = 4
	fLinkTraceID        = 1
	fLinkSpanID         = 2
	fLinkTraceState     = 3
	fLinkAttributes     = 4
	fLinkDroppedAttrs   = 5
	fLinkFlags          = 6
	fStatusMessage      = 2
	fStatusCode         = 3
	fKeyValueKey        = 1
	fKeyValueValue      = 2
	fAnyString          = 1
	fAnyBool            = 2
	fAnyInt             = 3
	fAnyDouble          = 4
	fAnyArray           = 5
	fAnyKvlist          = 6
	fAnyBytes           = 7
	fArrayValues        = 1
	fKeyValueListValues = 1
)

// begin appends the tag of the message field num and a one-byte
// placeholder for its length, and returns where the message's body starts.
func begin(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return append(b, 0), len(b) + 1
}

// end writes the length of the body that began at start, moving the body
// along when its length takes more than the placeholder's byte.
func end(b []byte, start int) []byte {
	n := len(b) - start
	if k := protowire.SizeVarint(uint64(n)); k > 1 {
		b = append(b, make([]byte, k-1)...)
		copy(b[start+k-1:], b[start:start+n])
	}
	protowire.AppendVarint(b[start-1:start-1], uint64(n))
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

func appendFixed32(b []byte, num protowire.Number, v uint32) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, v)
}

// appendKeyValues appends each attribute as a KeyValue field num.
func appendKeyValues(b []byte, num protowire.Number, attrs []attribute.KeyValue) []byte {
	for _, a := range attrs {
		var at int
		b, at = begin(b, num)
		b = appendString(b, fKeyValueKey, string(a.Key))
		var vat int
		b, vat = begin(b, fKeyValueValue)
		b = appendAnyValue(b, a.Value)
		b = end(b, vat)
		b = end(b, at)
	}
	return b
}

// appendAnyValue appends the body of an AnyValue.
func appendAnyValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.STRING:
		b = protowire.AppendTag(b, fAnyString, protowire.BytesType)
		return protowire.AppendString(b, v.AsString())
	case attribute.BOOL:
		b = protowire.AppendTag(b, fAnyBool, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = protowire.AppendTag(b, fAnyInt, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = protowire.AppendTag(b, fAnyDouble, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(v.AsFloat64()))
	case attribute.BYTESLICE:
		return appendBytes(b, fAnyBytes, v.AsByteSlice())
	case attribute.BOOLSLICE:
		return appendArray(b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		return appendArray(b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		return appendArray(b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		return appendArray(b, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		return appendArray(b, v.AsSlice(), func(v attribute.Value) attribute.Value { return v })
	case attribute.MAP:
		b, at := begin(b, fAnyKvlist)
		b = appendKeyValues(b, fKeyValueListValues, v.AsMap())
		return end(b, at)
	case attribute.EMPTY:
		return b
	}
	b = protowire.AppendTag(b, fAnyString, protowire.BytesType)
	return protowire.AppendString(b, "INVALID")
}

func appendArray[E any](b []byte, vs []E, conv func(E) attribute.Value) []byte {
	b, at := begin(b, fAnyArray)
	for _, v := range vs {
		var vat int
		b, vat = begin(b, fArrayValues)
		b = appendAnyValue(b, conv(v))
		b = end(b, vat)
	}
	return end(b, at)
}

// appendResource appends r as ResourceSpans' resource field.
func appendResource(b []byte, r *resource.Resource) []byte {
	if r == nil {
		return b
	}
	b, at := begin(b, fResourceSpansResource)
	b = appendKeyValues(b, fResourceAttributes, r.Attributes())
	return end(b, at)
}

// appendScope appends s as ScopeSpans' scope field (none for the zero
// scope).
func appendScope(b []byte, s instrumentation.Scope) []byte {
	if s == (instrumentation.Scope{}) {
		return b
	}
	b, at := begin(b, fScopeSpansScope)
	b = appendString(b, fScopeName, s.Name)
	b = appendString(b, fScopeVersion, s.Version)
	b = appendKeyValues(b, fScopeAttributes, s.Attributes.ToSlice())
	return end(b, at)
}

// appendSpan appends s, which has ended, with its record, as a
// ScopeSpans' spans field.
func appendSpan(b []byte, s *span, r *record) []byte {
	b, at := begin(b, fScopeSpansSpans)
	tid, sid := s.sc.TraceID(), s.sc.SpanID()
	b = appendBytes(b, fSpanTraceID, tid[:])
	b = appendBytes(b, fSpanSpanID, sid[:])
	if s.sc.TraceState().Len() > 0 {
		b = appendString(b, fSpanTraceState, s.sc.TraceState().String())
	}
	if s.parentID.IsValid() {
		b = appendBytes(b, fSpanParentSpanID, s.parentID[:])
	}
	b = appendString(b, fSpanName, s.name)
	b = appendUint(b, fSpanKind, uint64(spanKind(s.kind)))
	b = appendFixed64(b, fSpanStart, unixNano(s.start.UnixNano()))
	b = appendFixed64(b, fSpanEnd, unixNano(s.end.UnixNano()))
	b = appendKeyValues(b, fSpanAttributes, r.attrs)
	b = appendUint(b, fSpanDroppedAttrs, uint64(clampUint32(r.dropped)))
	for _, ev := range r.events {
		var eat int
		b, eat = begin(b, fSpanEvents)
		b = appendFixed64(b, fEventTime, unixNano(ev.at.UnixNano()))
		b = appendString(b, fEventName, ev.name)
		b = appendKeyValues(b, fEventAttributes, ev.attrs)
		b = appendUint(b, fEventDroppedAttrs, uint64(clampUint32(ev.dropped)))
		b = end(b, eat)
	}
	b = appendUint(b, fSpanDroppedEvents, uint64(clampUint32(r.droppedEvents)))
	for _, l := range r.links {
		var lat int
		b, lat = begin(b, fSpanLinks)
		ltid, lsid := l.sc.TraceID(), l.sc.SpanID()
		b = appendBytes(b, fLinkTraceID, ltid[:])
		b = appendBytes(b, fLinkSpanID, lsid[:])
		b = appendString(b, fLinkTraceState, l.sc.TraceState().String())
		b = appendKeyValues(b, fLinkAttributes, l.attrs)
		b = appendUint(b, fLinkDroppedAttrs, uint64(clampUint32(l.dropped)))
		b = appendFixed32(b, fLinkFlags, spanFlags(l.sc.TraceFlags(), l.sc.IsRemote()))
		b = end(b, lat)
	}
	b = appendUint(b, fSpanDroppedLinks, uint64(clampUint32(r.droppedLinks)))
	var sat int
	b, sat = begin(b, fSpanStatus)
	b = appendString(b, fStatusMessage, s.statusDesc)
	b = appendUint(b, fStatusCode, uint64(statusCode(s.status)))
	b = end(b, sat)
	b = appendFixed32(b, fSpanFlags, spanFlags(s.sc.TraceFlags(), s.parentRemote))
	return end(b, at)
}

func unixNano(n int64) uint64 { return uint64(max(0, n)) }

func spanFlags(tf trace.TraceFlags, remote bool) uint32 {
	// The low 8 bits are the W3C trace flags; the exporter always says
	// whether it knows the parent is remote.
	flags := uint32(tf) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if remote {
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
