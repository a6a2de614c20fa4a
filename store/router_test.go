package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// placementFunc is a store.Placements made of a function.
type placementFunc func(ctx context.Context, id tenant.ID) (store.Placement, error)

func (f placementFunc) Placement(ctx context.Context, id tenant.ID) (store.Placement, error) {
	return f(ctx, id)
}

// newKeylessRouter returns a router over a SQLite shard in a temporary
// directory where tenant acme is provisioned in database mode; key is its
// cursor key (nil: none).
func newKeylessRouter(t *testing.T, key []byte) (*store.Router, context.Context) {
	t.Helper()
	b, err := sqlite.Open(t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := store.Placement{Mode: store.Database, Shard: "local"}
	r, err := store.NewRouter(store.Config{
		Placements: placementFunc(func(context.Context, tenant.ID) (store.Placement, error) { return p, nil }),
		Backends:   map[string]store.Backend{"local": b},
		CursorKey:  key,
	})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	acme := tenant.MustParse("acme")
	if err := r.Provision(context.Background(), acme, p); err != nil {
		t.Fatal(err)
	}
	return r, tenant.WithID(context.Background(), acme)
}

func TestRouterWithoutCursorKey(t *testing.T) {
	r, ctx := newKeylessRouter(t, nil)
	t.Run("writes and reads records", func(t *testing.T) {
		err := r.Tx(ctx, func(tx *store.Tx) error {
			_, _, err := tx.Put(ctx, "notes", "n1", json.RawMessage(`{"a":1}`), store.IfMatch{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		err = r.ReadTx(ctx, func(tx *store.Tx) error {
			_, err := tx.Get(ctx, "notes", "n1")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("refuses to list with ErrNoCursorKey", func(t *testing.T) {
		err := r.ReadTx(ctx, func(tx *store.Tx) error {
			_, err := tx.List(ctx, "notes", store.ListOptions{})
			return err
		})
		if !errors.Is(err, store.ErrNoCursorKey) {
			t.Fatalf("List without a cursor key: %v, want ErrNoCursorKey", err)
		}
	})
}

func TestRouterWithCursorKeyLists(t *testing.T) {
	r, ctx := newKeylessRouter(t, []byte(strings.Repeat("k", 32)))
	err := r.ReadTx(ctx, func(tx *store.Tx) error {
		_, err := tx.List(ctx, "notes", store.ListOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRouterRefusesAShortCursorKey(t *testing.T) {
	b, err := sqlite.Open(t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, key := range [][]byte{{}, []byte("short")} {
		_, err := store.NewRouter(store.Config{
			Placements: placementFunc(func(context.Context, tenant.ID) (store.Placement, error) { return store.Placement{}, nil }),
			Backends:   map[string]store.Backend{"local": b},
			CursorKey:  key,
		})
		if err == nil {
			t.Errorf("NewRouter with a %d-byte cursor key succeeded", len(key))
		}
	}
}
