// Package tracing is Bulkhead's OpenTelemetry tracing: the spans of the
// ingress gate, the store router and the HTTP server, on a TracerProvider
// of the caller's choosing, and the attributes they carry.
//
// Bulkhead's library parts take an optional trace.TracerProvider
// (ingress.Config.TracerProvider, store.Config.TracerProvider); without
// one they use the global provider (otel.GetTracerProvider), which traces
// nothing until a program sets one. While tracing is off no span is
// started and nothing is allocated. Package tracing/otlp builds a provider
// from the standard OTEL_* variables, as `bulkhead serve` does:
//
//	tp, err := otlp.Setup(ctx, otlp.Options{ServiceName: "notes"})
//	if err != nil {
//		return err
//	}
//	defer tp.Shutdown(context.Background()) // flushes the last spans
//	gate, err := ingress.New(ingress.Config{Authenticator: auth, TracerProvider: tp})
//	router, err := store.NewRouter(store.Config{Placements: cat, Backends: backends, TracerProvider: tp})
//	handler := tracing.Middleware(tp, tracing.HTTPOptions{})(mux)
//
// The spans: the HTTP request (a server span named by its route pattern,
// the child of a valid W3C traceparent), ingress.gate (what
// authentication, policy and admission each took, as attributes) and
// store.tx (one per
// transaction, with its shard, isolation mode, backend, read-only or write,
// and whether a replica served it). Each carries the tenant (TenantKey)
// where it is known.
//
// What is never recorded: tokens and header values, the request's path and
// query (record ids and filter values are tenant data), collection names
// (a tenant's schema: the route pattern names the route instead), bodies,
// record data, SQL statements and their arguments, and error messages
// (which may quote any of these): a failure is a span status with a stable
// problem code (ProblemKey) or error class.
package tracing
