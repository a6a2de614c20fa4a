package recordapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/store"
)

// detailNotFound is the one answer for a missing record and another
// tenant's: the two must not be told apart.
const detailNotFound = "no such record in this collection"

// sentinels is the one table that maps the sentinels of package store to
// HTTP answers. Order matters only where an error could wrap two of them;
// the first match wins.
var sentinels = []problem.Sentinel{
	{Err: store.ErrNotFound, Status: 404, Code: "not_found", Detail: detailNotFound},
	{Err: store.ErrPrecondition, Status: 412, Code: "precondition_failed", Keep: true},
	{Err: store.ErrConflict, Status: 409, Code: "conflict", Detail: "the record changed concurrently; retry the request"},
	{Err: store.ErrInvalidCollection, Status: 400, Code: "invalid_collection", Keep: true},
	{Err: store.ErrInvalidRecordID, Status: 400, Code: "invalid_record_id", Keep: true},
	{Err: store.ErrInvalidData, Status: 400, Code: "invalid_data", Keep: true},
	{Err: store.ErrInvalidCursor, Status: 400, Code: "invalid_cursor",
		Detail: "the cursor is malformed, was changed, or belongs to another list; start again without a cursor"},
	{Err: store.ErrInvalidReadAfter, Status: 400, Code: "invalid_read_after", Keep: true},
	{Err: store.ErrInvalidFilter, Status: 400, Code: "invalid_filter", Keep: true},
	{Err: store.ErrInvalidLimit, Status: 400, Code: "invalid_limit", Keep: true},
	{Err: store.ErrIsolationUnsupported, Status: 400, Code: "isolation_unsupported", Keep: true},
	{Err: store.ErrInvalidIsolation, Status: 400, Code: "invalid_isolation", Keep: true},
	// A tenant that authenticated but has no placement any more is being
	// deleted right now: its credential is as good as revoked.
	{Err: store.ErrUnknownTenant, Status: 401, Code: "unauthenticated", Detail: ingress.DetailUnauthenticated},
}

// Problem returns the answer to err if the API knows it: a *problem.Error
// (as it is), a sentinel of package store (store.ErrNotFound is 404
// not_found, the same bytes for another tenant's record as for a missing
// one), a *store.QuotaError (403 quota_exceeded, with the limit hit) or an
// *http.MaxBytesError (413 body_too_large). ok is false for any other
// error.
func Problem(err error) (e *problem.Error, ok bool) {
	if errors.As(err, &e) {
		return e, true
	}
	var qe *store.QuotaError
	if errors.As(err, &qe) {
		return quotaProblem(qe), true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return problem.New(http.StatusRequestEntityTooLarge, "body_too_large",
			"the request body is larger than "+strconv.FormatInt(tooBig.Limit, 10)+" bytes"), true
	}
	return problem.Match(err, sentinels)
}

// quotaProblem is 403 quota_exceeded with its extension members: the
// resource ("records" or "bytes"), its limit, the tenant's usage before
// the refused write, and what the write needed.
func quotaProblem(q *store.QuotaError) *problem.Error {
	e := problem.New(http.StatusForbidden, "quota_exceeded",
		"the write would exceed the tenant's storage quota; delete records or ask an operator to raise the quota ("+q.Error()+")")
	used := q.Usage.Records
	if q.Resource == "bytes" {
		used = q.Usage.Bytes
	}
	e.Extra = func(d *problem.Document) {
		d.Resource, d.Limit, d.Usage, d.Requested = q.Resource, &q.Limit, &used, &q.Requested
	}
	return e
}

// badRequest is a 400 problem with code and detail.
func badRequest(code, detail string) *problem.Error {
	return problem.New(http.StatusBadRequest, code, detail)
}
