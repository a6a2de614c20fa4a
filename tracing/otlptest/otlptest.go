// Package otlptest is a real OTLP/HTTP trace receiver for tests: a
// loopback HTTP server that accepts POST /v1/traces with a protobuf
// ExportTraceServiceRequest (gzip or not), as a collector does, and keeps
// what it received: each span flattened, and every request's raw bytes,
// in which a test can look for strings that must never leave the process.
//
//	rcv := otlptest.NewReceiver(t)
//	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
package otlptest

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened.
type Span struct {
	TraceID, SpanID, ParentSpanID string // lowercase hex; ParentSpanID "" for a root
	TraceState                    string
	Name                          string
	Kind                          tracepb.Span_SpanKind
	Scope                         string            // the instrumentation scope's name
	Attributes                    map[string]string // values as strings
	Resource                      map[string]string
	StatusCode                    tracepb.Status_StatusCode
	StatusMessage                 string
	Events                        []string // event names
}

// Receiver is a running OTLP/HTTP receiver. It is safe for concurrent use.
type Receiver struct {
	// URL is the receiver's base URL (http://127.0.0.1:port), the value
	// of OTEL_EXPORTER_OTLP_ENDPOINT.
	URL string
	srv *httptest.Server

	mu       sync.Mutex
	spans    []Span   // guarded by mu
	raw      [][]byte // guarded by mu
	requests int      // guarded by mu
	bytes    int64    // guarded by mu
	discard  bool     // guarded by mu
}

// Discard makes the receiver read and answer each export request without
// decoding or keeping it (for benchmarks: a collector is another process,
// whose decoding would otherwise be counted against the process under
// test, and millions of spans would fill its memory). It then counts
// requests and bytes, not spans.
func (r *Receiver) Discard() {
	r.mu.Lock()
	r.discard = true
	r.mu.Unlock()
}

// Bytes returns how many bytes of export requests were received
// (uncompressed).
func (r *Receiver) Bytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// NewReceiver starts a receiver, closed when the test ends.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.export)
	r.srv = httptest.NewServer(mux)
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

func (r *Receiver) export(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = zr
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "Content-Type "+ct+", want application/x-protobuf", http.StatusUnsupportedMediaType)
		return
	}
	r.mu.Lock()
	discard := r.discard
	r.mu.Unlock()
	if discard {
		n, err := io.Copy(io.Discard, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.requests++
		r.bytes += n
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		return // an empty ExportTraceServiceResponse
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.requests++
	r.bytes += int64(len(b))
	r.mu.Unlock()
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	spans := flatten(&msg)
	r.mu.Lock()
	r.spans = append(r.spans, spans...)
	r.raw = append(r.raw, b)
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func flatten(msg *coltracepb.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range msg.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					TraceState: s.GetTraceState(), Name: s.GetName(), Kind: s.GetKind(),
					Scope: ss.GetScope().GetName(), Attributes: attrs(s.GetAttributes()), Resource: res,
					StatusCode: s.GetStatus().GetCode(), StatusMessage: s.GetStatus().GetMessage(),
				}
				if p := s.GetParentSpanId(); len(p) > 0 {
					sp.ParentSpanID = hex.EncodeToString(p)
				}
				for _, e := range s.GetEvents() {
					sp.Events = append(sp.Events, e.GetName())
				}
				out = append(out, sp)
			}
		}
	}
	return out
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = value(kv.GetValue())
	}
	return m
}

func value(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonpb.AnyValue_BytesValue:
		return string(x.BytesValue)
	default:
		return fmt.Sprint(v)
	}
}

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Requests returns how many export requests were received.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// Contains reports whether any request received so far holds s anywhere
// in its bytes (a span's name, attributes, events, status, trace state or
// resource).
func (r *Receiver) Contains(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.raw {
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

// Reset forgets what was received.
func (r *Receiver) Reset() {
	r.mu.Lock()
	r.spans, r.raw, r.requests, r.bytes = nil, nil, 0, 0
	r.mu.Unlock()
}

// Messages returns the export requests received so far, decoded, in the
// order they arrived (none while discarding).
func (r *Receiver) Messages() []*coltracepb.ExportTraceServiceRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*coltracepb.ExportTraceServiceRequest, 0, len(r.raw))
	for _, b := range r.raw {
		msg := new(coltracepb.ExportTraceServiceRequest)
		if proto.Unmarshal(b, msg) == nil { // export checked it decodes
			out = append(out, msg)
		}
	}
	return out
}
