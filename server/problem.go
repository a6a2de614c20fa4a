package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"sync"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Problem is an RFC 9457 problem document as the API writes it (package
// problem). Code is the stable, machine-readable error code. The request
// id is sent in the X-Request-ID header, not in the body, so that equal
// problems are byte-identical (another tenant's record and a missing
// record must not be told apart).
type Problem = problem.Document

// apiError is an error the HTTP layer knows how to answer.
type apiError struct {
	status int
	code   string
	detail string
	header http.Header // extra response headers (Allow, WWW-Authenticate)
	quota  *store.QuotaError
}

func (e *apiError) Error() string { return e.code + ": " + e.detail }

func newError(status int, code, detail string) *apiError {
	return &apiError{status: status, code: code, detail: detail}
}

// Fixed details for answers that must not vary with the request.
const (
	detailNotFound      = "no such record in this collection"
	detailInvalidCursor = "the cursor is malformed, was changed, or belongs to another list; start again without a cursor"
	detailInternal      = "the server failed to handle the request; the request id in X-Request-ID identifies it in the server log"
	detailUnauth        = "send a valid credential as 'Authorization: Bearer <token>'"
)

// sentinel maps an error the packages below return to its answer. keep
// says whether the error's own message is a safe and useful detail;
// otherwise detail is used as is.
type sentinel struct {
	err    error
	status int
	code   string
	keep   bool
	detail string
}

// sentinels is the one table that maps the sentinels of tenant, store and
// catalog to HTTP answers. Order matters only where an error could wrap
// two of them; the first match wins.
var sentinels = []sentinel{
	{err: tenant.ErrInvalid, status: 400, code: "invalid_tenant_id", keep: true},
	{err: store.ErrNotFound, status: 404, code: "not_found", detail: detailNotFound},
	{err: store.ErrPrecondition, status: 412, code: "precondition_failed", keep: true},
	{err: store.ErrConflict, status: 409, code: "conflict", detail: "the record changed concurrently; retry the request"},
	{err: store.ErrInvalidCollection, status: 400, code: "invalid_collection", keep: true},
	{err: store.ErrInvalidRecordID, status: 400, code: "invalid_record_id", keep: true},
	{err: store.ErrInvalidData, status: 400, code: "invalid_data", keep: true},
	{err: store.ErrInvalidCursor, status: 400, code: "invalid_cursor", detail: detailInvalidCursor},
	{err: store.ErrInvalidFilter, status: 400, code: "invalid_filter", keep: true},
	{err: store.ErrInvalidLimit, status: 400, code: "invalid_limit", keep: true},
	{err: store.ErrIsolationUnsupported, status: 400, code: "isolation_unsupported", keep: true},
	{err: store.ErrInvalidIsolation, status: 400, code: "invalid_isolation", keep: true},
	// A tenant that authenticated but has no placement any more is being
	// deleted right now: its credential is as good as revoked.
	{err: store.ErrUnknownTenant, status: 401, code: "unauthenticated", detail: detailUnauth},
	{err: catalog.ErrNotFound, status: 404, code: "tenant_not_found", detail: "no such tenant"},
	{err: catalog.ErrExists, status: 409, code: "tenant_exists", detail: "a tenant with this id already exists; pick another id or delete the old tenant first"},
	{err: catalog.ErrKeyNotFound, status: 404, code: "key_not_found", detail: "no such key for this tenant"},
	{err: catalog.ErrUnauthenticated, status: 401, code: "unauthenticated", detail: detailUnauth},
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

// toAPIError maps err to its answer; ok is false for an unknown error,
// which the caller answers with 500 internal.
func toAPIError(err error) (e *apiError, ok bool) {
	if errors.As(err, &e) {
		return e, true
	}
	var qe *store.QuotaError
	if errors.As(err, &qe) {
		e = newError(http.StatusForbidden, "quota_exceeded",
			"the write would exceed the tenant's storage quota; delete records or ask an operator to raise the quota ("+qe.Error()+")")
		e.quota = qe
		return e, true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return newError(http.StatusRequestEntityTooLarge, "body_too_large",
			"the request body is larger than "+strconv.FormatInt(tooBig.Limit, 10)+" bytes"), true
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			d := s.detail
			if s.keep {
				d = err.Error()
			}
			e = newError(s.status, s.code, d)
			if s.status == http.StatusUnauthorized {
				e.header = http.Header{"Www-Authenticate": {`Bearer realm="bulkhead", error="invalid_token"`}}
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

func writeProblem(w http.ResponseWriter, e *apiError) {
	pe := &problem.Error{Status: e.status, Code: e.code, Detail: e.detail, Header: e.header}
	if q := e.quota; q != nil {
		// Quota extension members: the resource ("records" or "bytes"), its
		// limit, the tenant's usage before the refused write, and what the
		// write needed.
		used := q.Usage.Records
		if q.Resource == "bytes" {
			used = q.Usage.Bytes
		}
		pe.Extra = func(d *problem.Document) {
			d.Resource, d.Limit, d.Usage, d.Requested = q.Resource, &q.Limit, &used, &q.Requested
		}
	}
	problem.Write(w, pe)
}

// writeJSON answers with status and v as JSON.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSONBody(w, status, append(body, '\n'))
}

// writeJSONBody writes an encoded JSON body with its headers.
func writeJSONBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writePage writes a list page as writeJSON would (byte for byte the same
// body), but encodes it record by record into a pooled buffer and yields
// the processor every store.YieldEvery records, so one tenant's large page
// neither holds a P for a whole scheduler slice while other tenants'
// requests wait nor leaves megabytes of garbage for the collector, whose
// pauses every tenant shares.
func (s *Server) writePage(w http.ResponseWriter, r *http.Request, page store.Page) {
	buf := pageBuffers.Get().(*bytes.Buffer)
	defer putPageBuffer(buf)
	if err := encodePage(buf, page); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSONBody(w, http.StatusOK, buf.Bytes())
}

// pageBuffers holds page encoding buffers for reuse.
var pageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledPage bounds the buffers kept for reuse (a page of 1000 records
// of a few KiB); a bigger one is left to the collector.
const maxPooledPage = 8 << 20

func putPageBuffer(buf *bytes.Buffer) {
	if buf.Cap() > maxPooledPage {
		return
	}
	buf.Reset()
	pageBuffers.Put(buf)
}

// encodePage appends json.Marshal(page) plus a newline to buf, made record
// by record.
func encodePage(buf *bytes.Buffer, page store.Page) error {
	if page.Items == nil {
		body, err := json.Marshal(page)
		buf.Write(body)
		buf.WriteByte('\n')
		return err
	}
	// An Encoder writes into buf without a buffer of its own per value;
	// it escapes HTML like json.Marshal and ends each value with a
	// newline, which is cut.
	enc := json.NewEncoder(buf)
	buf.WriteString(`{"items":[`)
	for i := range page.Items {
		if i > 0 {
			buf.WriteByte(',')
			if i%store.YieldEvery == 0 {
				runtime.Gosched()
			}
		}
		if err := enc.Encode(&page.Items[i]); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1)
	}
	buf.WriteString(`],"next_cursor":`)
	if err := enc.Encode(page.NextCursor); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1)
	buf.WriteString("}\n")
	return nil
}
