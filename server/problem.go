package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/analytics"
	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/recordapi"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tracing"
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

// sentinels is the one table that maps the sentinels of tenant and catalog
// to HTTP answers; package recordapi maps those of store. Order matters
// only where an error could wrap two of them; the first match wins.
var sentinels = []problem.Sentinel{
	{Err: tenant.ErrInvalid, Status: 400, Code: "invalid_tenant_id", Keep: true},
	{Err: catalog.ErrNotFound, Status: 404, Code: "tenant_not_found", Detail: "no such tenant"},
	{Err: catalog.ErrExists, Status: 409, Code: "tenant_exists", Detail: "a tenant with this id already exists; pick another id or delete the old tenant first"},
	{Err: catalog.ErrKeyNotFound, Status: 404, Code: "key_not_found", Detail: "no such key for this tenant"},
	{Err: catalog.ErrUnauthenticated, Status: 401, Code: "unauthenticated", Detail: ingress.DetailUnauthenticated},
	{Err: catalog.ErrSuspended, Status: 403, Code: "tenant_suspended", Detail: "the tenant is suspended; an operator can resume it"},
	{Err: catalog.ErrInvalidRole, Status: 400, Code: "invalid_role", Keep: true},
	{Err: catalog.ErrInvalidTier, Status: 400, Code: "invalid_tier", Keep: true},
	{Err: catalog.ErrInvalidName, Status: 400, Code: "invalid_name", Keep: true},
	{Err: catalog.ErrInvalidState, Status: 409, Code: "invalid_state", Keep: true},
	{Err: catalog.ErrInvalidIssuer, Status: 400, Code: "invalid_issuer", Keep: true},
	{Err: catalog.ErrInvalidGrant, Status: 400, Code: "invalid_grant", Keep: true},
	{Err: catalog.ErrInvalidRetention, Status: 400, Code: "invalid_retention", Keep: true},
	{Err: catalog.ErrInvalidEventSettings, Status: 400, Code: "invalid_events", Keep: true},
	{Err: catalog.ErrGrantNotFound, Status: 404, Code: "grant_not_found", Detail: "no such grant for this tenant"},
	{Err: catalog.ErrAgentNotFound, Status: 404, Code: "agent_not_found", Detail: "no such support agent (or it is revoked)"},
	{Err: catalog.ErrAnalystNotFound, Status: 404, Code: "analyst_not_found", Detail: "no such analyst (or it is revoked)"},
	{Err: analytics.ErrInvalidField, Status: 400, Code: "invalid_field", Keep: true},
	{Err: analytics.ErrInvalidAgg, Status: 400, Code: "invalid_agg", Keep: true},
	{Err: analytics.ErrInvalidGroupBy, Status: 400, Code: "invalid_group_by", Keep: true},
	{Err: analytics.ErrInvalidBounds, Status: 400, Code: "invalid_bounds", Keep: true},
	{Err: analytics.ErrInvalidEpsilon, Status: 400, Code: "invalid_epsilon", Keep: true},
	{Err: analytics.ErrInvalidMaxRecords, Status: 400, Code: "invalid_max_records", Keep: true},
	{Err: analytics.ErrBudgetExhausted, Status: 400, Code: "budget_exhausted", Keep: true},
}

// toAPIError maps err to its answer: recordapi.Problem's (problem errors,
// store's sentinels, quotas, bodies too large), else the table's; ok is
// false for an unknown error, which the caller answers with 500 internal.
func toAPIError(err error) (e *problem.Error, ok bool) {
	if e, ok := recordapi.Problem(err); ok {
		return e, true
	}
	return problem.Match(err, sentinels)
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
	tracing.RecordProblem(r.Context(), e.Code)
	writeProblem(w, e)
}

func writeProblem(w http.ResponseWriter, e *problem.Error) { problem.Write(w, e) }

// writeJSON answers with status and v as JSON, as the record API does.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	if err := recordapi.WriteJSON(w, status, v); err != nil {
		s.writeError(w, r, err)
	}
}
