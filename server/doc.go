// Package server is Bulkhead's HTTP API: the v1 data plane (tenant API
// keys; records and collections) and control plane (the operator token;
// tenants and their keys), with /healthz, /readyz and /metrics.
//
// Every request passes the same chain: a request id (an inbound
// X-Request-ID is adopted only if short and safe; it is echoed back), the
// request log and metrics (package telemetry), panic recovery, a body
// limit, then routing. Each path is registered once and dispatches on the
// method, so unknown paths are 404 route_not_found and known paths with a
// wrong method are 405 method_not_allowed with an Allow header. Routes then
// authenticate: control-plane routes take only the operator token,
// data-plane routes only tenant API keys, whose tenant — and nothing else:
// no header, path, query or body field — goes into the request context
// with tenant.WithID. All errors become application/problem+json documents
// with stable codes in one place (problem.go).
//
// A server on the embedded default keeps everything under one data
// directory: control.db (the catalog), the SQLite records (shard "local":
// a pooled file and tenants/ for database mode), cursor.key (the list
// cursor HMAC key) and operator.token (mode 0600).
//
//	s, err := server.Open(ctx, server.Options{DataDir: "./bulkhead-data"})
//	if err != nil { ... }
//	defer s.Close()
//	ln, _ := net.Listen("tcp", "127.0.0.1:8080")
//	err = s.Serve(ctx, ln) // returns after ctx is done and in-flight requests finished
package server
