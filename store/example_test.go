package store_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// examplePlacements is a placement source for the examples; the catalog
// is the production one.
type examplePlacements map[tenant.ID]store.Placement

func (p examplePlacements) Placement(_ context.Context, id tenant.ID) (store.Placement, error) {
	pl, ok := p[id]
	if !ok {
		return store.Placement{}, fmt.Errorf("%w %q", store.ErrUnknownTenant, id)
	}
	return pl, nil
}

// A Router over the embedded SQLite backend: acme in the shared pooled
// file, globex in a file of its own. Each transaction is the tenant's in
// the context, and only its.
func ExampleRouter_Tx() {
	dir, err := os.MkdirTemp("", "bulkhead-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	be, err := sqlite.Open(dir, sqlite.Options{})
	if err != nil {
		log.Fatal(err)
	}
	acme, globex := tenant.MustParse("acme"), tenant.MustParse("globex")
	places := examplePlacements{
		acme:   {Mode: store.Pooled, Shard: "local"},
		globex: {Mode: store.Database, Shard: "local"},
	}
	key := make([]byte, 32) // authenticates list cursors; keep it secret and stable
	_, _ = rand.Read(key)
	router, err := store.NewRouter(store.Config{
		Placements: places,
		Backends:   map[string]store.Backend{"local": be},
		CursorKey:  key,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer router.Close()
	ctx := context.Background()
	for id, p := range places {
		if err := router.Provision(ctx, id, p); err != nil { // control plane: the tenant is explicit
			log.Fatal(err)
		}
	}

	// Data plane: the tenant comes from the context, as ingress puts it there.
	acmeCtx := tenant.WithID(ctx, acme)
	err = router.Tx(acmeCtx, func(tx *store.Tx) error {
		rec, created, err := tx.Put(acmeCtx, "invoices", "inv-1", []byte(`{"total": 120}`), store.IfMatch{})
		fmt.Println("acme put", rec.ID, "version", rec.Version, "created", created)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	globexCtx := tenant.WithID(ctx, globex)
	err = router.ReadTx(globexCtx, func(tx *store.Tx) error {
		_, err := tx.Get(globexCtx, "invoices", "inv-1")
		return err
	})
	fmt.Println("globex gets acme's id:", err, errors.Is(err, store.ErrNotFound))

	err = router.ReadTx(ctx, func(*store.Tx) error { return nil })
	fmt.Println("no tenant:", errors.Is(err, tenant.ErrMissing))
	// Output:
	// acme put inv-1 version 1 created true
	// globex gets acme's id: record not found true
	// no tenant: true
}

// Lists come in pages in id order; the cursor of one page asks for the
// next, and is bound to the tenant, the collection and the filter.
func ExampleTx_List() {
	dir, err := os.MkdirTemp("", "bulkhead-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	be, err := sqlite.Open(dir, sqlite.Options{})
	if err != nil {
		log.Fatal(err)
	}
	acme := tenant.MustParse("acme")
	places := examplePlacements{acme: {Mode: store.Pooled, Shard: "local"}}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	router, err := store.NewRouter(store.Config{Placements: places, Backends: map[string]store.Backend{"local": be}, CursorKey: key})
	if err != nil {
		log.Fatal(err)
	}
	defer router.Close()
	if err := router.Provision(context.Background(), acme, places[acme]); err != nil {
		log.Fatal(err)
	}

	ctx := tenant.WithID(context.Background(), acme)
	err = router.Tx(ctx, func(tx *store.Tx) error {
		for _, inv := range []struct{ id, status string }{{"inv-1", "paid"}, {"inv-2", "open"}, {"inv-3", "paid"}, {"inv-4", "paid"}} {
			if _, _, err := tx.Put(ctx, "invoices", inv.id, []byte(`{"status":"`+inv.status+`"}`), store.IfMatch{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	paid, err := store.ParseFilter("status", "eq.paid")
	if err != nil {
		log.Fatal(err)
	}
	err = router.ReadTx(ctx, func(tx *store.Tx) error {
		opts := store.ListOptions{Limit: 2, Filters: []store.Filter{paid}}
		for {
			page, err := tx.List(ctx, "invoices", opts)
			if err != nil {
				return err
			}
			for _, rec := range page.Items {
				fmt.Print(rec.ID, " ")
			}
			fmt.Println("| more:", page.NextCursor != "")
			if page.NextCursor == "" {
				return nil
			}
			opts.Cursor = page.NextCursor
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// inv-1 inv-3 | more: true
	// inv-4 | more: false
}
