package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/recordapi"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Problem is an RFC 9457 problem document as the API writes it (package
// problem). Code is the stable, machine-readable error code. The request
// id is sent in the X-Request-ID header, not in the body, so that equal
// problems are byte-identical (another tenant's record and a missing
// record must not be told apart).
type Problem = problem.Document

// newError returns the server's own answer: a problem with status, code
// and detail.
func newError(status int, code, detail string) *problem.Error {
	return problem.New(status, code, detail)
}

// detailInternal is the answer to a failure the client cannot fix.
const detailInternal = "the server failed to handle the request; the request id in X-Request-ID identifies it in the server log"

// sentinel maps an error of package tenant or catalog to its answer. keep
// says whether the error's own message is a safe and useful detail;
// otherwise detail is used as is.
type sentinel struct {
	err    error
	status int
	code   string
	keep   bool
	detail string
}

// sentinels is the one table that maps the sentinels of tenant and catalog
// to HTTP answers; package recordapi maps those of store. Order matters
// only where an error could wrap two of them; the first match wins.
var sentinels = []sentinel{
	{err: tenant.ErrInvalid, status: 400, code: "invalid_tenant_id", keep: true},
	{err: catalog.ErrNotFound, status: 404, code: "tenant_not_found", detail: "no such tenant"},
	{err: catalog.ErrExists, status: 409, code: "tenant_exists", detail: "a tenant with this id already exists; pick another id or delete the old tenant first"},
	{err: catalog.ErrKeyNotFound, status: 404, code: "key_not_found", detail: "no such key for this tenant"},
	{err: catalog.ErrUnauthenticated, status: 401, code: "unauthenticated", detail: ingress.DetailUnauthenticated},
	{err: catalog.ErrSuspended, status: 403, code: "tenant_suspended", detail: "the tenant is suspended; an operator can resume it"},
	{err: catalog.ErrInvalidRole, status: 400, code: "invalid_role", keep: true},
	{err: catalog.ErrInvalidTier, status: 400, code: "invalid_tier", keep: true},
	{err: catalog.ErrInvalidName, status: 400, code: "invalid_name", keep: true},
	{err: catalog.ErrInvalidState, status: 409, code: "invalid_state", keep: true},
	{err: catalog.ErrInvalidIssuer, status: 400, code: "invalid_issuer", keep: true},
	{err: catalog.ErrInvalidGrant, status: 400, code: "invalid_grant", keep: true},
	{err: catalog.ErrGrantNotFound, status: 404, code: "grant_not_found", detail: "no such grant for this tenant"},
	{err: catalog.ErrAgentNotFound, status: 404, code: "agent_not_found", detail: "no such support agent (or it is revoked)"},
}

// toAPIError maps err to its answer: recordapi.Problem's (problem errors,
// store's sentinels, quotas, bodies too large), else the table's; ok is
// false for an unknown error, which the caller answers with 500 internal.
func toAPIError(err error) (e *problem.Error, ok bool) {
	if e, ok := recordapi.Problem(err); ok {
		return e, true
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			d := s.detail
			if s.keep {
				d = err.Error()
			}
			e = newError(s.status, s.code, d)
			if s.status == http.StatusUnauthorized {
				e.WithHeader("WWW-Authenticate", `Bearer realm="bulkhead", error="invalid_token"`)
			}
			return e, true
		}
	}
	return nil, false
}

// writeError answers r with the problem for err. It is the only place
// errors become HTTP responses. Unknown errors are logged with the request
// id and answered with 500 internal, with no detail of the cause.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := toAPIError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			e = newError(http.StatusServiceUnavailable, "unavailable", "the request was cancelled or timed out")
		} else {
			s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
				slog.String("request_id", telemetry.InfoFrom(r.Context()).ID()),
				slog.String("error", err.Error()))
			e = newError(http.StatusInternalServerError, "internal", detailInternal)
		}
	}
	writeProblem(w, e)
}

func writeProblem(w http.ResponseWriter, e *problem.Error) { problem.Write(w, e) }

// writeJSON answers with status and v as JSON, as the record API does.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	if err := recordapi.WriteJSON(w, status, v); err != nil {
		s.writeError(w, r, err)
	}
}
