package postgres

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
)

// A write is held back until the transaction's next statement or COMMIT
// (deferWrite). These tests change a record under a write in flight, with
// team SQL (which takes no usage lock), and check that the write then fails
// as it did when it was sent at once, and that it changes nothing: neither
// the record nor the tenant's usage.
func TestHeldBackWriteThatFailsChangesNothing(t *testing.T) {
	for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
		t.Run(string(mode), func(t *testing.T) {
			w := newWorld(t, mode, 4)
			ctx := w.e.Tenant(t, "acme")
			r := w.e.Router
			if err := r.Tx(ctx, func(tx *store.Tx) error {
				_, _, err := tx.Put(ctx, "docs", "d1", []byte(`{"v":1}`), store.IfMatch{})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			usage := func() store.Usage {
				var u store.Usage
				if err := r.ReadTx(ctx, func(tx *store.Tx) (err error) { u, err = tx.Usage(ctx); return err }); err != nil {
					t.Fatal(err)
				}
				return u
			}
			before := usage()
			team := func(sql string) {
				if err := Tx(ctx, r, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, sql); return err }); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}

			t.Run("an update of a record changed meanwhile is a conflict at commit", func(t *testing.T) {
				tx, err := r.Begin(ctx, store.TxOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				if _, _, err := tx.Put(ctx, "docs", "d1", []byte(`{"v":"a much longer value than before"}`), store.IfMatch{}); err != nil {
					t.Fatal(err)
				}
				team(`UPDATE records SET version = version + 10 WHERE collection = 'docs' AND id = 'd1'`)
				if err := tx.Commit(); !errors.Is(err, store.ErrConflict) {
					t.Fatalf("commit = %v, want ErrConflict", err)
				}
				var rec store.Record
				if err := r.ReadTx(ctx, func(tx *store.Tx) (err error) { rec, err = tx.Get(ctx, "docs", "d1"); return err }); err != nil {
					t.Fatal(err)
				}
				if string(rec.Data) != `{"v":1}` || rec.Version != 11 {
					t.Errorf("record = %s at version %d, want {\"v\":1} at 11", rec.Data, rec.Version)
				}
				if u := usage(); u != before {
					t.Errorf("usage = %+v, want %+v", u, before)
				}
			})

			t.Run("a read after a failed held-back write gets its error", func(t *testing.T) {
				tx, err := r.Begin(ctx, store.TxOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				if _, _, err := tx.Put(ctx, "docs", "d1", []byte(`{"v":2}`), store.IfMatch{}); err != nil {
					t.Fatal(err)
				}
				team(`DELETE FROM records WHERE collection = 'docs' AND id = 'd1'`)
				if _, err := tx.Get(ctx, "docs", "d1"); !errors.Is(err, store.ErrConflict) {
					t.Fatalf("get = %v, want ErrConflict", err)
				}
				if err := tx.Commit(); err == nil {
					t.Fatal("commit after a failed write succeeded")
				}
			})

			t.Run("an insert of a record created meanwhile is a conflict at commit", func(t *testing.T) {
				tx, err := r.Begin(ctx, store.TxOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				if _, created, err := tx.Put(ctx, "docs", "d1", []byte(`{"v":3}`), store.IfMatch{}); err != nil || !created {
					t.Fatalf("put = %v, %v; want a creation", created, err)
				}
				team(`INSERT INTO records (tenant_id, collection, id, data, version, created_at, updated_at)
					VALUES ('acme', 'docs', 'd1', '{"v":"team"}', 1, now(), now())`)
				if err := tx.Commit(); !errors.Is(err, store.ErrConflict) {
					t.Fatalf("commit = %v, want ErrConflict", err)
				}
			})
		})
	}
}

// A held-back write keeps the data it was given: a caller that reuses its
// buffer (a pool, say), or the record Put returned, after Put and before
// Commit changes nothing stored.
func TestHeldBackWriteKeepsItsData(t *testing.T) {
	w := newWorld(t, store.Pooled, 4)
	ctx := w.e.Tenant(t, "acme")
	r := w.e.Router
	for _, id := range []string{"new", "new"} { // an insert, then an update
		buf := []byte(`{"v":"original"}`)
		if err := r.Tx(ctx, func(tx *store.Tx) error {
			rec, _, err := tx.Put(ctx, "docs", id, buf, store.IfMatch{})
			if err != nil {
				return err
			}
			copy(buf, `{"v":"scribbled"}`)
			copy(rec.Data, `{"v":"scribbled"}`)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var rec store.Record
		if err := r.ReadTx(ctx, func(tx *store.Tx) (err error) { rec, err = tx.Get(ctx, "docs", id); return err }); err != nil {
			t.Fatal(err)
		}
		if string(rec.Data) != `{"v": "original"}` && string(rec.Data) != `{"v":"original"}` {
			t.Fatalf("stored %s, want the data Put was given", rec.Data)
		}
	}
}
