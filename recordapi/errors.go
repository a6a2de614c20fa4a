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

// sentinel maps an error of package store to its answer. keep says
// whether the error's own message is a safe and useful detail; otherwise
// detail is used as is.
type sentinel struct {
	err    error
	status int
	code   string
	keep   bool
	detail string
}

// sentinels is the one table that maps the sentinels of package store to
// HTTP answers. Order matters only where an error could wrap two of them;
// the first match wins.
var sentinels = []sentinel{
	{err: store.ErrNotFound, status: 404, code: "not_found", detail: detailNotFound},
	{err: store.ErrPrecondition, status: 412, code: "precondition_failed", keep: true},
	{err: store.ErrConflict, status: 409, code: "conflict", detail: "the record changed concurrently; retry the request"},
	{err: store.ErrInvalidCollection, status: 400, code: "invalid_collection", keep: true},
	{err: store.ErrInvalidRecordID, status: 400, code: "invalid_record_id", keep: true},
	{err: store.ErrInvalidData, status: 400, code: "invalid_data", keep: true},
	{err: store.ErrInvalidCursor, status: 400, code: "invalid_cursor",
		detail: "the cursor is malformed, was changed, or belongs to another list; start again without a cursor"},
	{err: store.ErrInvalidFilter, status: 400, code: "invalid_filter", keep: true},
	{err: store.ErrInvalidLimit, status: 400, code: "invalid_limit", keep: true},
	{err: store.ErrIsolationUnsupported, status: 400, code: "isolation_unsupported", keep: true},
	{err: store.ErrInvalidIsolation, status: 400, code: "invalid_isolation", keep: true},
	// A tenant that authenticated but has no placement any more is being
	// deleted right now: its credential is as good as revoked.
	{err: store.ErrUnknownTenant, status: 401, code: "unauthenticated", detail: ingress.DetailUnauthenticated},
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
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			d := s.detail
			if s.keep {
				d = err.Error()
			}
			e = problem.New(s.status, s.code, d)
			if s.status == http.StatusUnauthorized {
				e.WithHeader("WWW-Authenticate", `Bearer realm="bulkhead", error="invalid_token"`)
			}
			return e, true
		}
	}
	return nil, false
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
