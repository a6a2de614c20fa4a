package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/bulkhead-dev/bulkhead/store"
)

// The data plane. Every handler here runs behind tenantOnly, so the
// request context carries the credential's tenant and the router scopes
// every transaction to it.

func recordPath(collection, id string) string {
	return "/v1/collections/" + collection + "/records/" + url.PathEscape(id)
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// parseIfMatch reads the If-Match header: absent (unconditional), "*" (the
// record must exist) or one strong ETag "<version>".
func parseIfMatch(h http.Header) (store.IfMatch, error) {
	vals := h.Values("If-Match")
	if len(vals) == 0 {
		return store.IfMatch{}, nil
	}
	bad := func(detail string) (store.IfMatch, error) {
		return store.IfMatch{}, newError(http.StatusBadRequest, "invalid_if_match", detail)
	}
	if len(vals) > 1 {
		return bad(`send one If-Match value: "*" or the ETag "<version>"`)
	}
	v := strings.TrimSpace(vals[0])
	if v == "*" {
		return store.IfMatch{Any: true}, nil
	}
	if strings.HasPrefix(v, "W/") {
		return bad(`weak ETags cannot be used with If-Match; send the ETag "<version>"`)
	}
	if len(v) < 3 || len(v) > 21 || v[0] != '"' || v[len(v)-1] != '"' {
		return bad(`If-Match must be "*" or the ETag "<version>" (with the quotes)`)
	}
	n, err := strconv.ParseInt(v[1:len(v)-1], 10, 64)
	if err != nil || n < 1 || v[1] == '+' {
		return bad(`the version in If-Match must be a positive integer, as in "3"`)
	}
	return store.IfMatch{Version: n}, nil
}

// readBody reads the whole (size-limited) request body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, newError(http.StatusBadRequest, "invalid_json", "the request body could not be read")
	}
	return b, nil
}

// readData reads the body as record data: valid JSON (else invalid_json)
// that is an object nested at most store.MaxDepth deep (else invalid_data).
func readData(r *http.Request) (json.RawMessage, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, newError(http.StatusBadRequest, "invalid_json", "the body is empty; send the record's data as a JSON object")
	}
	if !json.Valid(b) {
		return nil, newError(http.StatusBadRequest, "invalid_json", "the body is not valid JSON; send the record's data as a JSON object")
	}
	return store.NormalizeData(b)
}

func (s *Server) writeRecord(w http.ResponseWriter, r *http.Request, status int, rec store.Record) {
	w.Header().Set("ETag", etag(rec.Version))
	if status == http.StatusCreated {
		w.Header().Set("Location", recordPath(rec.Collection, rec.ID))
	}
	s.writeJSON(w, r, status, rec)
}

// validRecordRef checks the collection and id of the path before anything
// else happens.
func validRecordRef(r *http.Request) (collection, id string, err error) {
	collection, id = r.PathValue("c"), r.PathValue("id")
	if err := store.ValidCollection(collection); err != nil {
		return "", "", err
	}
	if err := store.ValidRecordID(id); err != nil {
		return "", "", err
	}
	return collection, id, nil
}

// putRecord: PUT /v1/collections/{c}/records/{id} creates (201) or
// replaces (200) the record, honouring If-Match (412 on mismatch).
func (s *Server) putRecord(w http.ResponseWriter, r *http.Request) error {
	c, id, err := validRecordRef(r)
	if err != nil {
		return err
	}
	cond, err := parseIfMatch(r.Header)
	if err != nil {
		return err
	}
	data, ok := s.recordData(w, r)
	if !ok {
		return nil
	}
	ctx := r.Context()
	var rec store.Record
	var created bool
	err = s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		rec, created, err = tx.Put(ctx, c, id, data, cond)
		return err
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.writeRecord(w, r, status, rec)
	return nil
}

// recordData reads a write's body, within the tenant's max_body_bytes, as
// record data; otherwise it writes the error (413, 400) and returns false.
func (s *Server) recordData(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	err := s.limitTenantBody(w, r)
	var data []byte
	if err == nil {
		data, err = readData(r)
	}
	if err != nil {
		s.writeError(w, r, err)
		return nil, false
	}
	return data, true
}

// createRecord: POST /v1/collections/{c}/records stores the body as a new
// record with a server-made id (201 with Location).
func (s *Server) createRecord(w http.ResponseWriter, r *http.Request) error {
	c := r.PathValue("c")
	if err := store.ValidCollection(c); err != nil {
		return err
	}
	data, ok := s.recordData(w, r)
	if !ok {
		return nil
	}
	ctx := r.Context()
	var rec store.Record
	err := s.writeTx(ctx, func(tx *store.Tx) error {
		var err error
		rec, err = tx.Create(ctx, c, data)
		return err
	})
	if err != nil {
		return err
	}
	s.writeRecord(w, r, http.StatusCreated, rec)
	return nil
}

// getRecord: GET /v1/collections/{c}/records/{id} (200 with ETag, or 404;
// another tenant's record is exactly as absent as a missing one).
func (s *Server) getRecord(w http.ResponseWriter, r *http.Request) error {
	c, id, err := validRecordRef(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var rec store.Record
	err = s.router.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		rec, err = tx.Get(ctx, c, id)
		return err
	})
	if err != nil {
		return err
	}
	s.writeRecord(w, r, http.StatusOK, rec)
	return nil
}

// deleteRecord: DELETE /v1/collections/{c}/records/{id} (204 or 404),
// honouring If-Match.
func (s *Server) deleteRecord(w http.ResponseWriter, r *http.Request) error {
	c, id, err := validRecordRef(r)
	if err != nil {
		return err
	}
	cond, err := parseIfMatch(r.Header)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if err := s.writeTx(ctx, func(tx *store.Tx) error { return tx.Delete(ctx, c, id, cond) }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listOptions reads limit, cursor and the filters (every other query
// parameter, as <field>=eq.<value>) of a list request.
func listOptions(rawQuery string) (store.ListOptions, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return store.ListOptions{}, newError(http.StatusBadRequest, "invalid_filter", "the query string is malformed")
	}
	var opts store.ListOptions
	if vs, ok := q["limit"]; ok {
		n, err := strconv.Atoi(vs[0])
		if len(vs) != 1 || err != nil || n < 1 || n > store.MaxLimit {
			return opts, newError(http.StatusBadRequest, "invalid_limit",
				"limit must be one integer from 1 to "+strconv.Itoa(store.MaxLimit))
		}
		opts.Limit = n
	}
	if vs, ok := q["cursor"]; ok {
		if len(vs) != 1 || vs[0] == "" {
			return opts, store.ErrInvalidCursor
		}
		opts.Cursor = vs[0]
	}
	fields := make([]string, 0, len(q))
	for k := range q {
		if k != "limit" && k != "cursor" {
			fields = append(fields, k)
		}
	}
	slices.Sort(fields)
	for _, k := range fields {
		for _, v := range q[k] {
			f, err := store.ParseFilter(k, v)
			if err != nil {
				return opts, err
			}
			opts.Filters = append(opts.Filters, f)
		}
	}
	if len(opts.Filters) > store.MaxFilters {
		return opts, newError(http.StatusBadRequest, "invalid_filter",
			"at most "+strconv.Itoa(store.MaxFilters)+" filters per list")
	}
	return opts, nil
}

// listRecords: GET /v1/collections/{c}/records?limit=&cursor=&<field>=eq.<value>.
func (s *Server) listRecords(w http.ResponseWriter, r *http.Request) error {
	c := r.PathValue("c")
	if err := store.ValidCollection(c); err != nil {
		return err
	}
	opts, err := listOptions(r.URL.RawQuery)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if err := s.pageLimit(ctx, &opts); err != nil {
		return err
	}
	var page store.Page
	err = s.router.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		page, err = tx.List(ctx, c, opts)
		return err
	})
	if err != nil {
		return err
	}
	s.writePage(w, r, page)
	return nil
}

// listCollections: GET /v1/collections → {"items":[{"name","records"}]}.
func (s *Server) listCollections(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var cs []store.Collection
	err := s.router.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		cs, err = tx.Collections(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []store.Collection{}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"items": cs})
	return nil
}
