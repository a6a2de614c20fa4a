package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
)

// put runs one Put in its own transaction.
func (e *Env) put(ctx context.Context, coll, id, data string, cond store.IfMatch) (rec store.Record, created bool, err error) {
	err = e.Router.Tx(ctx, func(tx *store.Tx) error {
		var err error
		rec, created, err = tx.Put(ctx, coll, id, []byte(data), cond)
		return err
	})
	return rec, created, err
}

func (e *Env) mustPut(t *testing.T, ctx context.Context, coll, id, data string) store.Record {
	t.Helper()
	rec, _, err := e.put(ctx, coll, id, data, store.IfMatch{})
	if err != nil {
		t.Fatalf("put %s/%s: %v", coll, id, err)
	}
	return rec
}

// get runs one Get in its own read-only transaction.
func (e *Env) get(ctx context.Context, coll, id string) (rec store.Record, err error) {
	err = e.Router.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		rec, err = tx.Get(ctx, coll, id)
		return err
	})
	return rec, err
}

func (e *Env) del(ctx context.Context, coll, id string, cond store.IfMatch) error {
	return e.Router.Tx(ctx, func(tx *store.Tx) error { return tx.Delete(ctx, coll, id, cond) })
}

func (e *Env) list(ctx context.Context, coll string, opts store.ListOptions) (page store.Page, err error) {
	err = e.Router.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		page, err = tx.List(ctx, coll, opts)
		return err
	})
	return page, err
}

// listAll follows cursors to the last page, checking that every page but
// the last is full.
func (e *Env) listAll(t *testing.T, ctx context.Context, coll string, limit int, fs []store.Filter) []store.Record {
	t.Helper()
	var all []store.Record
	opts := store.ListOptions{Limit: limit, Filters: fs}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatalf("list %s: cursors never end", coll)
		}
		page, err := e.list(ctx, coll, opts)
		if err != nil {
			t.Fatalf("list %s: %v", coll, err)
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all
		}
		if len(page.Items) != limit {
			t.Fatalf("list %s: page of %d items (limit %d) has a next cursor", coll, len(page.Items), limit)
		}
		opts.Cursor = page.NextCursor
	}
}

func ids(recs []store.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func testPutCreateReplace(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	rec, created, err := e.put(ctx, "invoices", "inv-1", `{"total": 10}`, store.IfMatch{})
	if err != nil || !created || rec.Version != 1 {
		t.Fatalf("first put: created=%v version=%d err=%v, want created version 1", created, rec.Version, err)
	}
	for v := int64(2); v <= 4; v++ {
		rec, created, err = e.put(ctx, "invoices", "inv-1", `{"total": 20}`, store.IfMatch{})
		if err != nil || created || rec.Version != v {
			t.Fatalf("replace: created=%v version=%d err=%v, want replaced version %d", created, rec.Version, err, v)
		}
	}
	got, err := e.get(ctx, "invoices", "inv-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 4 || string(got.Data) != `{"total":20}` || got.ID != "inv-1" || got.Collection != "invoices" {
		t.Fatalf("get after replace: %+v", got)
	}
}

func testPutTimestamps(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	first := e.mustPut(t, ctx, "c", "r", `{}`)
	if !first.CreatedAt.Equal(first.UpdatedAt) || first.CreatedAt.Nanosecond()%1000 != 0 {
		t.Fatalf("created record: created_at %v updated_at %v, want equal, whole microseconds", first.CreatedAt, first.UpdatedAt)
	}
	second := e.mustPut(t, ctx, "c", "r", `{"a":1}`)
	if !second.CreatedAt.Equal(first.CreatedAt) || !second.UpdatedAt.After(first.UpdatedAt) {
		t.Fatalf("replaced record: created_at %v→%v, updated_at %v→%v; want created kept, updated later",
			first.CreatedAt, second.CreatedAt, first.UpdatedAt, second.UpdatedAt)
	}
	got, err := e.get(ctx, "c", "r")
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(second.CreatedAt) || !got.UpdatedAt.Equal(second.UpdatedAt) {
		t.Fatalf("stored timestamps %v/%v, want %v/%v", got.CreatedAt, got.UpdatedAt, second.CreatedAt, second.UpdatedAt)
	}
}

func testIfMatchPut(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	_, _, err := e.put(ctx, "c", "r", `{}`, store.IfMatch{Version: 1})
	wantErr(t, "If-Match version on a missing record", err, store.ErrPrecondition)
	_, _, err = e.put(ctx, "c", "r", `{}`, store.IfMatch{Any: true})
	wantErr(t, "If-Match any on a missing record", err, store.ErrPrecondition)
	if _, err := e.get(ctx, "c", "r"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failed preconditions created the record: %v", err)
	}
	e.mustPut(t, ctx, "c", "r", `{"v":1}`)
	rec, created, err := e.put(ctx, "c", "r", `{"v":2}`, store.IfMatch{Version: 1})
	if err != nil || created || rec.Version != 2 {
		t.Fatalf("matching If-Match: version %d created %v err %v", rec.Version, created, err)
	}
	_, _, err = e.put(ctx, "c", "r", `{"v":3}`, store.IfMatch{Version: 1})
	wantErr(t, "stale If-Match", err, store.ErrPrecondition)
	_, _, err = e.put(ctx, "c", "r", `{"v":3}`, store.IfMatch{Version: 7})
	wantErr(t, "future If-Match", err, store.ErrPrecondition)
	rec, _, err = e.put(ctx, "c", "r", `{"v":3}`, store.IfMatch{Any: true})
	if err != nil || rec.Version != 3 {
		t.Fatalf("If-Match any on an existing record: version %d err %v", rec.Version, err)
	}
	got, err := e.get(ctx, "c", "r")
	if err != nil || got.Version != 3 || string(got.Data) != `{"v":3}` {
		t.Fatalf("after If-Match writes: %+v %v (failed preconditions must not write)", got, err)
	}
}

func testCreate(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		var rec store.Record
		err := e.Router.Tx(ctx, func(tx *store.Tx) error {
			var err error
			rec, err = tx.Create(ctx, "notes", []byte(`{"i":1}`))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.ValidRecordID(rec.ID); err != nil || len(rec.ID) < 20 || seen[rec.ID] {
			t.Fatalf("server-made id %q: valid=%v, seen=%v; want a fresh opaque id", rec.ID, err, seen[rec.ID])
		}
		seen[rec.ID] = true
		if rec.Version != 1 {
			t.Fatalf("created record version %d, want 1", rec.Version)
		}
		got, err := e.get(ctx, "notes", rec.ID)
		if err != nil || string(got.Data) != `{"i":1}` {
			t.Fatalf("get created record: %+v %v", got, err)
		}
	}
	if n := len(e.listAll(t, ctx, "notes", 7, nil)); n != 20 {
		t.Fatalf("listed %d created records, want 20", n)
	}
}

func testGetMissing(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	_, err := e.get(ctx, "c", "nope")
	wantErr(t, "get missing record", err, store.ErrNotFound)
	e.mustPut(t, ctx, "c", "r", `{}`)
	_, err = e.get(ctx, "d", "r")
	wantErr(t, "get record from another collection", err, store.ErrNotFound)
	_, err = e.get(ctx, "c", "R")
	wantErr(t, "ids are case-sensitive", err, store.ErrNotFound)
	_, err = e.get(ctx, "Bad", "r")
	wantErr(t, "invalid collection", err, store.ErrInvalidCollection)
	_, err = e.get(ctx, "c", "a/b")
	wantErr(t, "invalid record id", err, store.ErrInvalidRecordID)
}

func testDelete(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	wantErr(t, "delete missing", e.del(ctx, "c", "r", store.IfMatch{}), store.ErrNotFound)
	wantErr(t, "delete missing with If-Match", e.del(ctx, "c", "r", store.IfMatch{Version: 1}), store.ErrPrecondition)
	wantErr(t, "delete missing with If-Match: *", e.del(ctx, "c", "r", store.IfMatch{Any: true}), store.ErrPrecondition)
	e.mustPut(t, ctx, "c", "r", `{}`)
	e.mustPut(t, ctx, "c", "r", `{}`)
	wantErr(t, "delete with stale If-Match", e.del(ctx, "c", "r", store.IfMatch{Version: 1}), store.ErrPrecondition)
	if _, err := e.get(ctx, "c", "r"); err != nil {
		t.Fatalf("failed delete removed the record: %v", err)
	}
	if err := e.del(ctx, "c", "r", store.IfMatch{Version: 2}); err != nil {
		t.Fatalf("delete with matching If-Match: %v", err)
	}
	_, err := e.get(ctx, "c", "r")
	wantErr(t, "get deleted", err, store.ErrNotFound)
	wantErr(t, "delete twice", e.del(ctx, "c", "r", store.IfMatch{}), store.ErrNotFound)
	rec, created, err := e.put(ctx, "c", "r", `{}`, store.IfMatch{})
	if err != nil || !created || rec.Version != 1 {
		t.Fatalf("put after delete: created=%v version=%d err=%v, want a new record at version 1", created, rec.Version, err)
	}
}

func testDataRoundTrip(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	cases := map[string]string{
		"spaces":  "{ \"a\" : [ 1 , 2 ] ,\n \"b\" : { } }",
		"unicode": `{"name":"Zoë 😀 日本","esc":"\u00e9\n\"q\"","pair":"\ud83d\ude00"}`,
		"numbers": `{"big":123456789012345678901234567890,"f":1.50,"e":1E+2,"neg":-0}`,
		"nested":  `{"a":{"b":{"c":[true,false,null,{"d":"e"}]}}}`,
		"large":   `{"blob":"` + strings.Repeat("x", 200_000) + `"}`,
	}
	for id, data := range cases {
		want, err := store.NormalizeData([]byte(data))
		if err != nil {
			t.Fatal(err)
		}
		rec := e.mustPut(t, ctx, "docs", id, data)
		if string(rec.Data) != string(want) {
			t.Fatalf("%s: put returned %.80s, want %.80s", id, rec.Data, want)
		}
		got, err := e.get(ctx, "docs", id)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data) != string(want) {
			t.Fatalf("%s: stored %.80s, want %.80s", id, got.Data, want)
		}
	}
	// The last three would read differently in Go (Filter.Matches) and in a
	// database's JSON functions, so they are refused at the door.
	for _, bad := range []string{`[]`, `"x"`, `{`, `{"a":1}{}`, `{"s":"a","s":"b"}`, `{"s":"\ud800"}`, "{\"s\":\"\xff\"}"} {
		_, _, err := e.put(ctx, "docs", "bad", bad, store.IfMatch{})
		wantErr(t, "put "+bad, err, store.ErrInvalidData)
	}
}

func testOwnWrites(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	err := e.Router.Tx(ctx, func(tx *store.Tx) error {
		if _, _, err := tx.Put(ctx, "c", "a", []byte(`{"x":1}`), store.IfMatch{}); err != nil {
			return err
		}
		rec, created, err := tx.Put(ctx, "c", "a", []byte(`{"x":2}`), store.IfMatch{Version: 1})
		if err != nil || created || rec.Version != 2 {
			t.Errorf("second put in the same tx: %+v %v %v", rec, created, err)
		}
		got, err := tx.Get(ctx, "c", "a")
		if err != nil || got.Version != 2 {
			t.Errorf("get in the same tx: %+v %v", got, err)
		}
		page, err := tx.List(ctx, "c", store.ListOptions{Filters: []store.Filter{{Field: "x", Value: "2"}}})
		if err != nil || len(page.Items) != 1 {
			t.Errorf("list in the same tx: %+v %v", page, err)
		}
		cs, err := tx.Collections(ctx)
		if err != nil || len(cs) != 1 || cs[0] != (store.Collection{Name: "c", Records: 1}) {
			t.Errorf("collections in the same tx: %+v %v", cs, err)
		}
		if err := tx.Delete(ctx, "c", "a", store.IfMatch{}); err != nil {
			return err
		}
		_, err = tx.Get(ctx, "c", "a")
		wantErr(t, "get after delete in the same tx", err, store.ErrNotFound)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testReadOnly(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	e.mustPut(t, ctx, "c", "r", `{"a":1}`)
	err := e.Router.ReadTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Get(ctx, "c", "r"); err != nil {
			t.Errorf("read tx get: %v", err)
		}
		if _, _, err := tx.Put(ctx, "c", "w", []byte(`{}`), store.IfMatch{}); err == nil {
			t.Error("put in a read-only tx succeeded")
		}
		if _, err := tx.Create(ctx, "c", []byte(`{}`)); err == nil {
			t.Error("create in a read-only tx succeeded")
		}
		if err := tx.Delete(ctx, "c", "r", store.IfMatch{}); err == nil {
			t.Error("delete in a read-only tx succeeded")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.get(ctx, "c", "w"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read-only tx wrote: %v", err)
	}
	if _, err := e.get(ctx, "c", "r"); err != nil {
		t.Fatalf("read-only tx deleted: %v", err)
	}
}

func testTxDone(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	tx, err := e.Router.Begin(ctx, store.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tx.Put(ctx, "c", "r", []byte(`{}`), store.IfMatch{}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "commit twice", tx.Commit(), store.ErrTxDone)
	if err := tx.Rollback(); err != nil {
		t.Fatalf("rollback after commit: %v, want nil", err)
	}
	_, err = tx.Get(ctx, "c", "r")
	wantErr(t, "get after commit", err, store.ErrTxDone)
	_, _, err = tx.Put(ctx, "c", "r", []byte(`{}`), store.IfMatch{})
	wantErr(t, "put after commit", err, store.ErrTxDone)
	if _, err := e.get(ctx, "c", "r"); err != nil {
		t.Fatalf("committed record: %v", err)
	}
}
