// Package server is Bulkhead's HTTP API: the v1 data plane (tenant API
// keys; records and collections) and control plane (the operator token;
// tenants and their keys), with /healthz, /readyz and /metrics.
//
// Every request passes the same chain: a request id (an inbound
// X-Request-ID is adopted only if short and safe; it is echoed back), the
// request log and metrics (package telemetry), panic recovery, a body
// limit, then routing. Each path is registered once and dispatches on the
// method, so unknown paths are 404 route_not_found and known paths with a
// wrong method are 405 method_not_allowed with an Allow header.
//
// Every v1 route names its policy action (routes.go) and is wrapped by one
// of two guards (authz.go). Both authenticate the single Bearer credential
// (authn.go: operator token, support agent token, JWT through package
// identity, or tenant API key), then ask the Cedar policy (package policy),
// then run the handler. The control-plane guard admits only the operator;
// the data-plane guard puts the tenant principal's own tenant — and nothing
// else: no header, path, query or body field — into the context with
// tenant.WithID, refuses Bulkhead-Act-As-Tenant from tenant credentials,
// and lets a support agent read one tenant only under a live grant.
// Changes, credential and grant operations, act-as requests and denials
// are recorded in the audit log (package audit). All errors become
// application/problem+json documents with stable codes in one place
// (problem.go).
//
// A server on the embedded default keeps everything under one data
// directory: control.db (the catalog), audit.db (the audit log), the SQLite records (shard "local":
// a pooled file and tenants/ for database mode), cursor.key (the list
// cursor HMAC key) and operator.token (mode 0600).
//
//	s, err := server.Open(ctx, server.Options{DataDir: "./bulkhead-data"})
//	if err != nil { ... }
//	defer s.Close()
//	ln, _ := net.Listen("tcp", "127.0.0.1:8080")
//	err = s.Serve(ctx, ln) // returns after ctx is done and in-flight requests finished
package server
