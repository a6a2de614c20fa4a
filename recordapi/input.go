package recordapi

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

// ReadBody reads the whole request body. Past a limit set with
// http.MaxBytesReader the error is the *http.MaxBytesError (413
// body_too_large); a body that cannot be read is 400 invalid_json.
func ReadBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, badRequest("invalid_json", "the request body could not be read")
	}
	return b, nil
}

// ReadData reads the body as record data, normalized by
// store.NormalizeData: valid JSON (else 400 invalid_json) that is an
// object nested at most store.MaxDepth deep (else store.ErrInvalidData,
// 400 invalid_data).
func ReadData(r *http.Request) (json.RawMessage, error) {
	b, err := ReadBody(r)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, badRequest("invalid_json", "the body is empty; send the record's data as a JSON object")
	}
	if !json.Valid(b) {
		return nil, badRequest("invalid_json", "the body is not valid JSON; send the record's data as a JSON object")
	}
	return store.NormalizeData(b)
}

// recordData reads a write's body, within the tenant's body limit, as
// record data.
func (a *API) recordData(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	max, err := a.o.BodyLimit(r.Context())
	if err != nil {
		return nil, err
	}
	if max > 0 {
		if r.ContentLength > max {
			w.Header().Set("Connection", "close")
			return nil, &http.MaxBytesError{Limit: max}
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
	}
	return ReadData(r)
}

// recordRef returns the collection and id of the path, checked before
// anything else happens.
func recordRef(r *http.Request) (collection, id string, err error) {
	collection, id = r.PathValue("c"), r.PathValue("id")
	if err := store.ValidCollection(collection); err != nil {
		return "", "", err
	}
	if err := store.ValidRecordID(id); err != nil {
		return "", "", err
	}
	return collection, id, nil
}

// parseIfMatch reads the If-Match header: absent (unconditional), "*" (the
// record must exist) or one strong ETag "<version>".
func parseIfMatch(h http.Header) (store.IfMatch, error) {
	vals := h.Values("If-Match")
	if len(vals) == 0 {
		return store.IfMatch{}, nil
	}
	bad := func(detail string) (store.IfMatch, error) {
		return store.IfMatch{}, badRequest("invalid_if_match", detail)
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

// listOptions reads limit, cursor and the filters (every other query
// parameter, as <field>=eq.<value>) of a list request.
func listOptions(rawQuery string) (store.ListOptions, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return store.ListOptions{}, badRequest("invalid_filter", "the query string is malformed")
	}
	var opts store.ListOptions
	if vs, ok := q["limit"]; ok {
		n, err := strconv.Atoi(vs[0])
		if len(vs) != 1 || err != nil || n < 1 || n > store.MaxLimit {
			return opts, badRequest("invalid_limit", "limit must be one integer from 1 to "+strconv.Itoa(store.MaxLimit))
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
		return opts, badRequest("invalid_filter", "at most "+strconv.Itoa(store.MaxFilters)+" filters per list")
	}
	return opts, nil
}
