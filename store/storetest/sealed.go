package storetest

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the key store of a sealed Env

	"github.com/bulkhead-dev/bulkhead/keys"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// NewSealedEnv returns an Env over b whose Router seals record data with
// per-tenant keys: a keys.Manager over a keyring and a SQLite key store in
// a temporary directory of tb.
func NewSealedEnv(tb testing.TB, b store.Backend, mode store.Mode) *Env {
	tb.Helper()
	dir := tb.TempDir()
	ring, err := keys.OpenKeyring(filepath.Join(dir, "keyring"))
	if err != nil {
		tb.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "keys.db")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	ks, err := keys.OpenSQLStore(context.Background(), db, false)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := keys.New(keys.Config{KMS: ring, KEKURI: ring.URI(), Store: ks})
	if err != nil {
		tb.Fatal(err)
	}
	e := newEnv(map[string]store.Backend{Shard: b})
	e.Backend, e.Mode, e.Keys = b, mode, m
	e.newRouter(tb)
	if err := e.Router.Supports(store.Placement{Mode: mode, Shard: Shard}); err != nil {
		tb.Fatalf("backend cannot host mode %s: %v", mode, err)
	}
	return e
}

// sealer returns the Router's store.Sealer: nil, not a nil *keys.Manager,
// for an Env that does not seal.
func (e *Env) sealer() store.Sealer {
	if e.Keys == nil {
		return nil
	}
	return e.Keys
}

// runSealedAttacks: what code with write access to the stored rows can do
// with sealed records.
func runSealedAttacks(t *testing.T, newEnv func(t *testing.T) *Env) {
	t.Run("SealedDataHoldsNoPlaintext", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		a := e.Tenant(t, "acme")
		put(t, e.Router, a, "docs", "r1", `{"needle_field":"needle-value-7431","n":12345.5}`)
		raw := rawGet(t, e, a, "docs", "r1")
		for _, s := range []string{"needle_field", "needle-value-7431", "12345.5"} {
			if strings.Contains(raw, s) {
				t.Fatalf("stored data %s holds %q in the clear", raw, s)
			}
		}
	})
	t.Run("EventDataHoldsNoPlaintext", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		a := e.Tenant(t, "acme")
		e.EventData.Set(tenant.MustParse("acme"), true)
		put(t, e.Router, a, "docs", "r1", `{"needle_field":"needle-value-7431"}`)
		btx := e.beginRaw(t, a, true)
		defer func() { _ = btx.Rollback() }()
		et, ok := btx.(store.EventTx)
		if !ok {
			t.Fatalf("%T keeps no outbox (store.EventTx)", btx)
		}
		evs, _, _, err := et.Events(a, 0, 10, nil)
		if err != nil || len(evs) != 1 {
			t.Fatalf("raw events: %v, %v", evs, err)
		}
		raw := string(evs[0].Data)
		if !strings.Contains(raw, store.SealedMarker) || strings.Contains(raw, "needle") {
			t.Fatalf("stored event data %s is not sealed", raw)
		}
	})
	t.Run("EventDataOfRetiredKeysReadsAsUnavailable", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		a := e.Tenant(t, "acme")
		id := tenant.MustParse("acme")
		e.EventData.Set(id, true)
		put(t, e.Router, a, "docs", "r1", `{"v":1}`)
		if _, err := e.Keys.Rotate(a, id); err != nil {
			t.Fatal(err)
		}
		put(t, e.Router, a, "docs", "r1", `{"v":2}`)
		if _, err := e.Keys.Retire(a, id); err != nil {
			t.Fatal(err)
		}
		e.Keys.Forget(id)
		evs := e.allEvents(t, a, 0)
		if len(evs) != 2 || evs[0].Data != nil || !evs[0].DataUnavailable ||
			string(evs[1].Data) != `{"v":2}` || evs[1].DataUnavailable {
			t.Fatalf("events after the old keys were retired: %+v", evs)
		}
	})
	t.Run("CiphertextMovedToAnotherRowOrTenantDoesNotOpen", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		a, b := e.Tenant(t, "acme"), e.Tenant(t, "globex")
		put(t, e.Router, a, "docs", "r1", `{"secret":"a-1"}`)
		put(t, e.Router, a, "docs", "r2", `{"secret":"a-2"}`)
		put(t, e.Router, b, "docs", "r1", `{"secret":"b-1"}`)
		stolen := rawGet(t, e, a, "docs", "r1")
		rawPut(t, e, a, "docs", "r2", stolen) // another row of the same tenant
		rawPut(t, e, b, "docs", "r1", stolen) // the same row of another tenant
		for _, c := range []struct {
			ctx context.Context
			id  string
		}{{a, "r2"}, {b, "r1"}} {
			err := e.Router.ReadTx(c.ctx, func(tx *store.Tx) error {
				_, err := tx.Get(c.ctx, "docs", c.id)
				return err
			})
			if !errors.Is(err, store.ErrSealed) {
				t.Fatalf("moved ciphertext at %s: %v, want ErrSealed", c.id, err)
			}
		}
	})
	t.Run("RecordsStoredInTheClearAreResealed", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		a := e.Tenant(t, "acme")
		rawPut(t, e, a, "docs", "old1", `{"k":"legacy"}`)
		rawPut(t, e, a, "docs", "old2", `{"k":"other"}`)
		put(t, e.Router, a, "docs", "new", `{"k":"legacy"}`)
		want := []string{"new", "old1"}
		if got := filteredIDs(t, e.Router, a, "docs", store.Filter{Field: "k", Value: "legacy"}); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("filter over clear and sealed records: %v, want %v", got, want)
		}
		err := e.Router.Tx(a, func(tx *store.Tx) error {
			res, err := tx.Reseal(a, "docs", "", 100)
			if err == nil && res.Resealed != 2 {
				t.Errorf("resealed %d records, want 2", res.Resealed)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if raw := rawGet(t, e, a, "docs", "old1"); strings.Contains(raw, "legacy") {
			t.Fatalf("resealed record still in the clear: %s", raw)
		}
		if got := filteredIDs(t, e.Router, a, "docs", store.Filter{Field: "k", Value: "legacy"}); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("filter after reseal: %v, want %v", got, want)
		}
	})
}

// put writes one record through the Router.
func put(t *testing.T, r *store.Router, ctx context.Context, collection, id, data string) {
	t.Helper()
	if err := r.Tx(ctx, func(tx *store.Tx) error {
		_, _, err := tx.Put(ctx, collection, id, []byte(data), store.IfMatch{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// filteredIDs lists the ids of collection's records that match f.
func filteredIDs(t *testing.T, r *store.Router, ctx context.Context, collection string, f store.Filter) []string {
	t.Helper()
	var ids []string
	if err := r.ReadTx(ctx, func(tx *store.Tx) error {
		p, err := tx.List(ctx, collection, store.ListOptions{Filters: []store.Filter{f}, Limit: 100})
		for _, rec := range p.Items {
			ids = append(ids, rec.ID)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// rawGet reads a record's stored data through the backend, bypassing the
// Router's sealing.
func rawGet(t *testing.T, e *Env, ctx context.Context, collection, id string) string {
	t.Helper()
	btx := e.beginRaw(t, ctx, true)
	defer btx.Rollback()
	rec, err := btx.Get(ctx, collection, id)
	if err != nil {
		t.Fatal(err)
	}
	return string(rec.Data)
}

// rawPut stores data as a record's data through the backend, as code with
// write access to the table could: a new record, or over an existing one.
func rawPut(t *testing.T, e *Env, ctx context.Context, collection, id, data string) {
	t.Helper()
	btx := e.beginRaw(t, ctx, false)
	defer btx.Rollback()
	rec, err := btx.Get(ctx, collection, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		now := e.now()
		err = btx.Insert(ctx, store.Record{ID: id, Collection: collection, Data: []byte(data), Version: 1, CreatedAt: now, UpdatedAt: now})
	case err == nil:
		rec.Data = []byte(data)
		err = btx.Update(ctx, rec, rec.Version)
	}
	if err == nil {
		err = btx.Commit()
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (e *Env) beginRaw(t *testing.T, ctx context.Context, readOnly bool) store.BackendTx {
	t.Helper()
	sc, err := e.Router.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	btx, err := e.Shards[sc.Placement.Shard].Begin(ctx, sc.Tenant, sc.Placement.Mode, !readOnly)
	if err != nil {
		t.Fatal(err)
	}
	return btx
}
