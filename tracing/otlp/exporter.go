package otlp

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// exporter is a span exporter that encodes spans in OTLP's protobuf itself
// (encode.go) into a buffer reused from batch to batch, and hands them to
// an OTLP client (otlptracehttp's, which reads the OTEL_EXPORTER_OTLP_*
// variables, compresses, sends and retries) as otlptrace's exporter does.
// That exporter built a message per span, attribute and value for every
// batch, and the client then marshalled them by reflection: most of what
// exporting cost the server. The client takes messages, so each resource's
// spans go to it as a ResourceSpans message whose fields are all already
// encoded, held as the message's unknown fields, which protobuf marshals
// verbatim: the bytes sent are those of the full message, and what a
// receiver decodes is what otlptrace's exporter would have sent
// (exporter_test compares the two). It needs the client's protocol to be
// http/protobuf, which Setup insists on (JSON would drop unknown fields).
// Exports are serialized.
type exporter struct {
	client otlptrace.Client

	mu sync.Mutex // serializes exports; guards what follows
	// The batch being encoded, reused batch after batch.
	buf     []byte
	msgs    []*tracepb.ResourceSpans // one per resource of the batch
	groups  []spanGroup
	members [][]sdktrace.ReadOnlySpan // the spans of each group
	// Encoded once and kept: the resource seen last (a provider has one)
	// and the scopes (Bulkhead has one).
	lastRes    *resource.Resource
	lastResEnc []byte
	scopeEnc   map[instrumentation.Scope][]byte
}

var _ sdktrace.SpanExporter = (*exporter)(nil)

// spanGroup is the resource and scope that spans exported together share.
type spanGroup struct {
	res   *resource.Resource
	scope instrumentation.Scope
}

// newExporter returns an exporter sending through client, started.
func newExporter(ctx context.Context, client otlptrace.Client) (*exporter, error) {
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	return &exporter{client: client, scopeEnc: map[instrumentation.Scope][]byte{}}, nil
}

// ExportSpans encodes spans and uploads them in one request.
func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	msgs := e.encode(spans)
	if len(msgs) == 0 {
		return nil
	}
	err := e.client.UploadTraces(ctx, msgs)
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

// release forgets the batch: its spans, and the messages' bytes (the
// buffer is reused).
func (e *exporter) release() {
	for _, m := range e.msgs {
		m.ProtoReflect().SetUnknown(nil)
	}
	clear(e.groups)
	e.groups = e.groups[:0]
	for i := range e.members {
		clear(e.members[i])
		e.members[i] = e.members[i][:0]
	}
	e.buf = e.buf[:0]
	if cap(e.buf) > 16<<20 { // an unusually large batch: do not keep its buffer
		e.buf = nil
	}
}

// encode groups spans by resource and instrumentation scope, in the order
// first seen, and returns a message per resource, its fields encoded.
func (e *exporter) encode(spans []sdktrace.ReadOnlySpan) []*tracepb.ResourceSpans {
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
	e.groups, e.members = groups, members

	// Each resource's body: its resource field, a ScopeSpans field per
	// scope, its schema URL; the bodies follow one another in buf.
	b := e.buf[:0]
	type body struct{ start, end int }
	var bodies [4]body
	out := bodies[:0]
	done := make([]bool, len(groups)) // small: one per group
	for i, g := range groups {
		if done[i] {
			continue
		}
		start := len(b)
		b = append(b, e.resource(g.res)...)
		for j := i; j < len(groups); j++ {
			if done[j] || !sameResource(groups[j].res, g.res) {
				continue
			}
			done[j] = true
			var at int
			b, at = begin(b, fResourceSpansScopes)
			b = append(b, e.scope(groups[j].scope)...)
			for _, s := range members[j] {
				b = appendSpan(b, s)
			}
			b = appendString(b, fScopeSpansSchemaURL, groups[j].scope.SchemaURL)
			b = end(b, at)
		}
		if g.res != nil {
			b = appendString(b, fResourceSpansSchemaURL, g.res.SchemaURL())
		}
		out = append(out, body{start, len(b)})
	}
	e.buf = b
	for len(e.msgs) < len(out) {
		e.msgs = append(e.msgs, new(tracepb.ResourceSpans))
	}
	for i, o := range out {
		e.msgs[i].ProtoReflect().SetUnknown(protoreflect.RawFields(b[o.start:o.end:o.end]))
	}
	return e.msgs[:len(out)]
}

func sameResource(a, b *resource.Resource) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a == b || a.Equivalent() == b.Equivalent()
}

// resource returns r encoded as ResourceSpans' resource field, encoding it
// once for the provider's resource.
func (e *exporter) resource(r *resource.Resource) []byte {
	if r != e.lastRes || e.lastResEnc == nil {
		e.lastRes, e.lastResEnc = r, appendResource([]byte{}, r)
	}
	return e.lastResEnc
}

// scope returns s encoded as ScopeSpans' scope field, encoding it once.
func (e *exporter) scope(s instrumentation.Scope) []byte {
	if enc, ok := e.scopeEnc[s]; ok {
		return enc
	}
	enc := appendScope([]byte{}, s)
	if len(e.scopeEnc) >= 64 { // scopes are few; never let a stream of them grow the map
		clear(e.scopeEnc)
	}
	e.scopeEnc[s] = enc
	return enc
}
