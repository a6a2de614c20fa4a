package recordapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/store"
)

// The handlers. Each acts on the tenant in the request's context alone
// (the router scopes every transaction to it) and returns its error for
// the caller to answer (Error, or the server's own error writer).

// Put is PUT /v1/collections/{c}/records/{id}: it creates (201 with
// Location) or replaces (200) the record with the body, honouring If-Match
// (412 precondition_failed on a mismatch). The answer carries the ETag.
func (a *API) Put(w http.ResponseWriter, r *http.Request) error {
	c, id, err := recordRef(r)
	if err != nil {
		return err
	}
	cond, err := parseIfMatch(r.Header)
	if err != nil {
		return err
	}
	data, err := a.recordData(w, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var rec store.Record
	var created bool
	err = a.write(w, ctx, func(tx *store.Tx) error {
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
	return writeRecord(w, status, rec)
}

// Create is POST /v1/collections/{c}/records: it stores the body as a new
// record with an id the store makes (201 with Location and ETag).
func (a *API) Create(w http.ResponseWriter, r *http.Request) error {
	c := r.PathValue("c")
	if err := store.ValidCollection(c); err != nil {
		return err
	}
	data, err := a.recordData(w, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var rec store.Record
	err = a.write(w, ctx, func(tx *store.Tx) error {
		var err error
		rec, err = tx.Create(ctx, c, data)
		return err
	})
	if err != nil {
		return err
	}
	return writeRecord(w, http.StatusCreated, rec)
}

// Get is GET /v1/collections/{c}/records/{id}: the record with its ETag,
// or 404 not_found. Another tenant's record is exactly as absent as a
// missing one.
func (a *API) Get(w http.ResponseWriter, r *http.Request) error {
	c, id, err := recordRef(r)
	if err != nil {
		return err
	}
	var rec store.Record
	err = a.read(r, func(ctx context.Context, tx *store.Tx) error {
		var err error
		rec, err = tx.Get(ctx, c, id)
		return err
	})
	if err != nil {
		return err
	}
	return writeRecord(w, http.StatusOK, rec)
}

// Delete is DELETE /v1/collections/{c}/records/{id}: 204, or 404
// not_found, honouring If-Match.
func (a *API) Delete(w http.ResponseWriter, r *http.Request) error {
	c, id, err := recordRef(r)
	if err != nil {
		return err
	}
	cond, err := parseIfMatch(r.Header)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if err := a.write(w, ctx, func(tx *store.Tx) error { return tx.Delete(ctx, c, id, cond) }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// List is GET /v1/collections/{c}/records?limit=&cursor=&<field>=eq.<value>:
// a page of records, {"items":[…],"next_cursor":…}, ordered by id; pass
// next_cursor back as cursor for the next page.
func (a *API) List(w http.ResponseWriter, r *http.Request) error {
	c := r.PathValue("c")
	if err := store.ValidCollection(c); err != nil {
		return err
	}
	opts, err := listOptions(r.URL.RawQuery)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if a.o.PageLimit != nil {
		if err := a.o.PageLimit(ctx, &opts); err != nil {
			return err
		}
	}
	var page store.Page
	err = a.read(r, func(ctx context.Context, tx *store.Tx) error {
		var err error
		page, err = tx.List(ctx, c, opts)
		return err
	})
	if err != nil {
		return err
	}
	return writePage(w, page)
}

// Collections is GET /v1/collections: the tenant's collections with their
// record counts, {"items":[{"name":…,"records":…}]}.
func (a *API) Collections(w http.ResponseWriter, r *http.Request) error {
	var cs []store.Collection
	err := a.read(r, func(ctx context.Context, tx *store.Tx) error {
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
	return WriteJSON(w, http.StatusOK, map[string]any{"items": cs})
}

// writeRecord answers with rec, its ETag and, when it was created, its
// Location.
func writeRecord(w http.ResponseWriter, status int, rec store.Record) error {
	w.Header().Set("ETag", `"`+strconv.FormatInt(rec.Version, 10)+`"`)
	if status == http.StatusCreated {
		w.Header().Set("Location", "/v1/collections/"+rec.Collection+"/records/"+url.PathEscape(rec.ID))
	}
	return WriteJSON(w, status, rec)
}
