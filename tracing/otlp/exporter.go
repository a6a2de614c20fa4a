package otlp

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/resource"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// exporter sends batches of spans that ending them already encoded in
// OTLP's protobuf (encode.go) through an OTLP client (otlptracehttp's,
// which reads the OTEL_EXPORTER_OTLP_* variables, compresses, sends and
// retries). The client takes messages, so a batch goes to it as one
// ResourceSpans message whose fields are all already encoded, held as the
// message's unknown fields, which protobuf marshals verbatim: the bytes
// sent are those of the full message, and what a receiver decodes is what
// the SDK's exporter would have sent (provider_test compares the two). It
// needs the client's protocol to be http/protobuf, which Setup insists on
// (JSON would drop unknown fields). Exports are serialized.
type exporter struct {
	client    otlptrace.Client
	res       []byte // the provider's resource, as ResourceSpans' resource field
	schemaURL string // the resource's

	mu   sync.Mutex // serializes sends; guards what follows
	buf  []byte
	msgs []*tracepb.ResourceSpans // one, reused
}

func newExporter(ctx context.Context, client otlptrace.Client, res *resource.Resource) (*exporter, error) {
	if err := client.Start(ctx); err != nil {
		return nil, err
	}
	e := &exporter{client: client, msgs: []*tracepb.ResourceSpans{{}}}
	if res != nil {
		e.res, e.schemaURL = appendResource(nil, res), res.SchemaURL()
	}
	return e, nil
}

// send sends bt's spans, under the resource, each tracer's as one
// ScopeSpans.
func (e *exporter) send(ctx context.Context, bt *batch) error {
	if bt.n == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	b := e.assemble(e.buf[:0], bt)
	msg := e.msgs[0].ProtoReflect()
	msg.SetUnknown(protoreflect.RawFields(b))
	err := e.client.UploadTraces(ctx, e.msgs)
	msg.SetUnknown(nil)
	e.buf = b[:0]
	if cap(b) > 16<<20 { // an unusually large batch: do not keep its buffer
		e.buf = nil
	}
	if err != nil {
		return fmt.Errorf("traces export: %w", err)
	}
	return nil
}

// assemble appends the fields of a ResourceSpans holding bt's spans.
func (e *exporter) assemble(b []byte, bt *batch) []byte {
	b = append(b, e.res...)
	for _, c := range bt.chunks {
		if len(c.buf) == 0 {
			continue
		}
		var at int
		b, at = begin(b, fResourceSpansScopes)
		b = append(b, c.t.enc...)
		b = append(b, c.buf...)
		b = appendString(b, fScopeSpansSchemaURL, c.t.scope.SchemaURL)
		b = end(b, at)
	}
	return appendString(b, fResourceSpansSchemaURL, e.schemaURL)
}

func (e *exporter) shutdown(ctx context.Context) error {
	return e.client.Stop(ctx)
}
