// Package server is Bulkhead's HTTP API: the v1 data plane (tenant API
// keys; records and collections) and control plane (the operator token;
// tenants and their keys), with /healthz, /readyz and /metrics.
//
// Every request passes the same chain: a request id of the server's own,
// sent back as X-Request-ID (an inbound X-Request-ID is only logged, as
// client_request_id, if short and safe), the
// request log and metrics (package telemetry), panic recovery, a body
// limit, then routing. Each path is registered once and dispatches on the
// method, so unknown paths are 404 route_not_found and known paths with a
// wrong method are 405 method_not_allowed with an Allow header.
//
// The API is a table (routes.go): each route names its plane and policy
// action. Control and data routes pass the ingress gate (package ingress,
// built in gate.go from the catalog's credentials through
// ingress/catalogauth): it authenticates the single Bearer credential
// (operator token, support agent token, JWT through package identity, or
// tenant API key), puts the tenant principal's own tenant — and nothing
// else: no header, path, query or body field — into the context with
// tenant.WithID, refuses Bulkhead-Act-As-Tenant from tenant credentials,
// lets a support agent read one tenant only under a live grant, asks the
// Cedar policy (package policy), rate-limits and admits the request, and
// audits changes, credential and grant operations, act-as requests and
// denials (package audit). The record API is package recordapi, mounted
// here; the tenant lifecycle is package fleet. Handlers return their
// error, and one adapter answers it as application/problem+json with a
// stable code (problem.go, package problem).
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
