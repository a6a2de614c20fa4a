package tracing

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HTTPOptions configure Middleware.
type HTTPOptions struct {
	// Route returns the route pattern that served r once the handler has
	// returned, such as "GET /v1/collections/{c}/records/{id}" (the span's
	// name and http.route), or "" if none matched. It must come from a
	// fixed set of patterns, never from the raw path. Default: the method
	// and r.Pattern, which a net/http ServeMux sets on the request it
	// serves.
	Route func(r *http.Request) string
	// RequestID returns the request's id for the span (optional).
	RequestID func(r *http.Request) string
}

// propagator reads W3C trace context only, and of it only traceparent
// (traceHeaders hides tracestate): a tracestate is free text from the
// client that every span would carry to the collector (a token sent in it
// would be exported), and baggage is not read either, so nothing a client
// sends reaches a span but the ids and the sampled flag.
var propagator = propagation.TraceContext{}

// Middleware returns HTTP middleware that serves each request in a server
// span on tp (the global provider if nil), the child of the request's W3C
// traceparent when it holds a valid one (a malformed, oversized or
// all-zero one is ignored and the span starts a new trace). The span's name
// is the route pattern with its method; its attributes are the method (one
// of the standard ones, or OTHER), the route's path template, the response
// status, the tenant (set by the
// ingress gate once known) and the problem code of an error: never the
// path, the query, a header's value or the body. A status of 500 or more
// marks the span as failed. Nothing is added to the response.
//
// With tracing off the request goes through untouched.
func Middleware(tp trace.TracerProvider, opts HTTPOptions) func(http.Handler) http.Handler {
	t := NewTracer(tp)
	route := opts.Route
	if route == nil {
		route = patternRoute
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !t.Enabled() {
				next.ServeHTTP(w, r)
				return
			}
			ctx := propagator.Extract(r.Context(), traceHeaders(r.Header))
			method := safeMethod(r.Method)
			ctx, span := t.StartKind(ctx, method, trace.SpanKindServer)
			defer span.End()
			rec := &statusWriter{ResponseWriter: w}
			r = r.WithContext(ctx)
			defer func() {
				status := rec.status
				p := recover()
				if p != nil && status == 0 {
					status = http.StatusInternalServerError
				}
				if status == 0 {
					status = http.StatusOK
				}
				attrs := append(Scratch(), attribute.String("http.request.method", method),
					attribute.Int("http.response.status_code", status))
				if rt := route(r); rt != "" {
					span.SetName(rt)
					// http.route is the path template alone.
					if _, tmpl, ok := strings.Cut(rt, " "); ok {
						rt = tmpl
					}
					attrs = append(attrs, attribute.String("http.route", rt))
				}
				if opts.RequestID != nil {
					if id := opts.RequestID(r); id != "" {
						attrs = append(attrs, RequestIDKey.String(id))
					}
				}
				span.SetAttributes(attrs...)
				Release(attrs)
				if status >= 500 {
					span.SetStatus(codes.Error, "")
				}
				if p != nil {
					panic(p) // the deferred End still runs
				}
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// patternRoute is the default Route: the method and the ServeMux pattern.
func patternRoute(r *http.Request) string {
	p := r.Pattern
	if p == "" {
		return ""
	}
	if strings.Contains(p, " ") { // the pattern names its method
		return p
	}
	return safeMethod(r.Method) + " " + p
}

// safeMethod keeps arbitrary client-chosen method strings out of spans.
func safeMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// statusWriter remembers the status sent. It supports
// http.ResponseController (and so flushing) through Unwrap.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush flushes the underlying writer if it can (server-sent events).
func (s *statusWriter) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// traceHeaders reads the two headers the propagator asks for without
// canonicalizing their names on every request (net/http has done it).
type traceHeaders http.Header

func (h traceHeaders) Get(key string) string {
	var v []string
	switch key {
	case "traceparent":
		v = h["Traceparent"]
	case "tracestate":
		return "" // never read: see propagator
	default:
		return http.Header(h).Get(key)
	}
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (h traceHeaders) Set(key, value string) { http.Header(h).Set(key, value) }

func (h traceHeaders) Keys() []string { return propagation.HeaderCarrier(h).Keys() }
