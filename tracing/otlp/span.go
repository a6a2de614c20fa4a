package otlp

import (
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// span is a recording span of tracerProvider. Its methods are safe for
// concurrent use; once it has ended (ended is set, under mu) nothing
// changes it, so ending encodes it without the lock.
type span struct {
	embedded.Span
	t            *tracer
	sc           trace.SpanContext
	parentID     trace.SpanID // zero for a root
	parentRemote bool
	kind         trace.SpanKind
	start        time.Time
	ended        atomic.Bool

	mu         sync.Mutex
	name       string
	end        time.Time
	status     codes.Code
	statusDesc string
	rec        *record // nil once ended
}

// record is what a span records besides its name, times and status: its
// attributes, events and links. The trace API has no way to read them
// back, so once ending the span has encoded them its record goes back to a
// pool, and a span is a small object (about 200 bytes) wherever the
// caller keeps it.
type record struct {
	attrs         []attribute.KeyValue // inline's, until it outgrows it
	dropped       int                  // attributes over the limit or invalid
	events        []event
	droppedEvents int
	links         []link
	droppedLinks  int
	// inline holds the first attributes: a request's spans carry a
	// handful.
	inline [8]attribute.KeyValue
}

var records = sync.Pool{New: func() any {
	r := new(record)
	r.attrs = r.inline[:0]
	return r
}}

func newRecord() *record { return records.Get().(*record) }

// release empties r, letting go of everything the span's caller gave it,
// and hands it back to the pool.
func (r *record) release() {
	*r = record{} // all of it, the inline attributes too
	r.attrs = r.inline[:0]
	records.Put(r)
}

type event struct {
	name    string
	at      time.Time
	attrs   []attribute.KeyValue
	dropped int
}

type link struct {
	sc      trace.SpanContext
	attrs   []attribute.KeyValue
	dropped int
}

func (s *span) SpanContext() trace.SpanContext { return s.sc }

func (s *span) IsRecording() bool { return !s.ended.Load() }

func (s *span) TracerProvider() trace.TracerProvider { return s.t.p }

// End ends the span (at the option's timestamp, or now) and hands it to
// the batch if it is sampled. Only the first End counts.
func (s *span) End(opts ...trace.SpanEndOption) {
	now := s.start.Add(time.Since(s.start)) // on the monotonic clock, as the SDK does
	s.mu.Lock()
	if s.ended.Load() {
		s.mu.Unlock()
		return
	}
	s.end = now
	if len(opts) > 0 {
		if c := trace.NewSpanEndConfig(opts...); !c.Timestamp().IsZero() {
			s.end = c.Timestamp()
		}
	}
	s.ended.Store(true)
	rec := s.rec
	s.rec = nil
	s.mu.Unlock()
	if s.sc.IsSampled() {
		s.t.p.batch.add(s, rec)
	}
	rec.release()
}

func (s *span) SetName(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended.Load() {
		s.name = name
	}
}

// SetStatus sets the status unless the span has ended or holds a status
// that outranks code (Ok outranks Error, which outranks Unset). Only
// Error keeps its description.
func (s *span) SetStatus(code codes.Code, description string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Load() || s.status > code {
		return
	}
	s.status, s.statusDesc = code, ""
	if code == codes.Error {
		s.statusDesc = description
	}
}

// SetAttributes sets each valid attribute: a key already set keeps its
// place and takes the new value; a new key past the count limit is
// dropped (and counted).
func (s *span) SetAttributes(kv ...attribute.KeyValue) {
	if len(kv) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Load() {
		return
	}
	limits, r := &s.t.p.limits, s.rec
	if limits.AttributeCountLimit == 0 {
		r.dropped += len(kv)
		return
	}
next:
	for _, a := range kv {
		if !a.Valid() {
			r.dropped++
			continue
		}
		a = truncateAttr(limits.AttributeValueLengthLimit, a)
		for i := range r.attrs {
			if r.attrs[i].Key == a.Key {
				r.attrs[i] = a
				continue next
			}
		}
		if limits.AttributeCountLimit > 0 && len(r.attrs) >= limits.AttributeCountLimit {
			r.dropped++
			continue
		}
		r.attrs = append(r.attrs, a)
	}
}

// AddEvent adds an event, evicting the oldest past the event limit; its
// attributes past the per-event limit are dropped.
func (s *span) AddEvent(name string, opts ...trace.EventOption) {
	c := trace.NewEventConfig(opts...)
	s.addEvent(name, c.Timestamp(), c.Attributes())
}

func (s *span) addEvent(name string, at time.Time, attrs []attribute.KeyValue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Load() {
		return
	}
	e := event{name: name, at: at}
	e.attrs, e.dropped = limitAttrs(attrs, s.t.p.limits.AttributePerEventCountLimit)
	r := s.rec
	r.events, r.droppedEvents = evict(r.events, e, s.t.p.limits.EventCountLimit, r.droppedEvents)
}

// AddLink links the span to another, as the SDK does: a link to nothing
// (no valid context, attributes or trace state) is ignored.
func (s *span) AddLink(l trace.Link) {
	if !l.SpanContext.IsValid() && len(l.Attributes) == 0 && l.SpanContext.TraceState().Len() == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Load() {
		return
	}
	k := link{sc: l.SpanContext}
	k.attrs, k.dropped = limitAttrs(l.Attributes, s.t.p.limits.AttributePerLinkCountLimit)
	r := s.rec
	r.links, r.droppedLinks = evict(r.links, k, s.t.p.limits.LinkCountLimit, r.droppedLinks)
}

// RecordError adds an "exception" event with the error's type and
// message, as the SDK does (and its stack with trace.WithStackTrace). The
// caller decides what its errors may say: Bulkhead's own spans never
// record an error's message.
func (s *span) RecordError(err error, opts ...trace.EventOption) {
	if err == nil || s.ended.Load() {
		return
	}
	opts = append(opts, trace.WithAttributes(attribute.String("exception.type", typeName(err)),
		attribute.String("exception.message", err.Error())))
	c := trace.NewEventConfig(opts...)
	attrs := c.Attributes()
	if c.StackTrace() {
		buf := make([]byte, 2048)
		attrs = append(attrs, attribute.String("exception.stacktrace", string(buf[:runtime.Stack(buf, false)])))
	}
	s.addEvent("exception", c.Timestamp(), attrs)
}

func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return fmt.Sprintf("%s.%s", t.PkgPath(), t.Name())
}

// limitAttrs returns a copy of the first limit attributes (all if limit
// is negative) and how many were dropped. As in the SDK, an event's or a
// link's values are not truncated.
func limitAttrs(attrs []attribute.KeyValue, limit int) ([]attribute.KeyValue, int) {
	dropped := 0
	if limit >= 0 && len(attrs) > limit {
		dropped, attrs = len(attrs)-limit, attrs[:limit]
	}
	if len(attrs) == 0 {
		return nil, dropped
	}
	return slices.Clone(attrs), dropped
}

// evict appends v, first evicting the oldest if q holds limit already (a
// negative limit: none), and returns q and the count of those evicted.
func evict[T any](q []T, v T, limit, dropped int) ([]T, int) {
	switch {
	case limit == 0:
		return q, dropped + 1
	case limit > 0 && len(q) >= limit:
		copy(q, q[1:])
		q = q[:len(q)-1]
		dropped++
	}
	return append(q, v), dropped
}

// truncateAttr cuts string values (also in slices) to limit characters,
// bytes to limit bytes; a negative limit leaves them whole.
func truncateAttr(limit int, a attribute.KeyValue) attribute.KeyValue {
	if limit < 0 {
		return a
	}
	a.Value = truncateValue(limit, a.Value)
	return a
}

func truncateValue(limit int, v attribute.Value) attribute.Value {
	switch v.Type() {
	case attribute.STRING:
		if s := v.AsString(); len(s) > limit {
			return attribute.StringValue(truncate(limit, s))
		}
	case attribute.BYTESLICE:
		if b := v.AsByteSlice(); len(b) > limit {
			return attribute.ByteSliceValue(b[:limit])
		}
	case attribute.STRINGSLICE:
		ss := slices.Clone(v.AsStringSlice()) // never the caller's own
		for i, s := range ss {
			ss[i] = truncate(limit, s)
		}
		return attribute.StringSliceValue(ss)
	case attribute.SLICE:
		vs := slices.Clone(v.AsSlice())
		for i := range vs {
			vs[i] = truncateValue(limit, vs[i])
		}
		return attribute.SliceValue(vs...)
	case attribute.MAP:
		kvs := slices.Clone(v.AsMap())
		for i := range kvs {
			kvs[i] = truncateAttr(limit, kvs[i])
		}
		return attribute.MapValue(kvs...)
	}
	return v
}

// truncate cuts s to its first limit characters (invalid UTF-8 counts as
// U+FFFD, which replaces it).
func truncate(limit int, s string) string {
	if len(s) <= limit {
		return s
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i]
		}
		n++
	}
	return s
}

// droppedSpan is a span the sampler dropped (or one started after
// Shutdown): it records nothing and carries its context on.
type droppedSpan struct {
	embedded.Span
	sc trace.SpanContext
	p  *tracerProvider
}

func (s droppedSpan) SpanContext() trace.SpanContext        { return s.sc }
func (droppedSpan) IsRecording() bool                       { return false }
func (droppedSpan) SetStatus(codes.Code, string)            {}
func (droppedSpan) SetAttributes(...attribute.KeyValue)     {}
func (droppedSpan) End(...trace.SpanEndOption)              {}
func (droppedSpan) RecordError(error, ...trace.EventOption) {}
func (droppedSpan) AddEvent(string, ...trace.EventOption)   {}
func (droppedSpan) AddLink(trace.Link)                      {}
func (droppedSpan) SetName(string)                          {}
func (s droppedSpan) TracerProvider() trace.TracerProvider  { return s.p }
