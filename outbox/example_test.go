package outbox_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/bulkhead-dev/bulkhead/outbox"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// examplePlacements places every tenant in the shared pooled file; the
// catalog is the production placement source.
type examplePlacements struct{}

func (examplePlacements) Placement(context.Context, tenant.ID) (store.Placement, error) {
	return store.Placement{Mode: store.Pooled, Shard: "local"}, nil
}

// A dispatcher runs a handler on each tenant's events in a context naming
// the event's tenant: the record it reads through the router is that
// tenant's, though both tenants have a note "n1". Its position is saved
// per tenant, so a second Dispatch finds nothing new.
func ExampleDispatcher() {
	dir, err := os.MkdirTemp("", "bulkhead-outbox-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	be, err := sqlite.Open(dir, sqlite.Options{})
	if err != nil {
		log.Fatal(err)
	}
	var d *outbox.Dispatcher // the hook may fire before d exists: Notify is nil-safe
	router, err := store.NewRouter(store.Config{Placements: examplePlacements{}, Backends: map[string]store.Backend{"local": be},
		EventsCommitted: func(id tenant.ID) { d.Notify(id) }})
	if err != nil {
		log.Fatal(err)
	}
	defer router.Close()

	ctx := context.Background()
	ids := []tenant.ID{tenant.MustParse("acme"), tenant.MustParse("globex")}
	for _, id := range ids {
		if err := router.Provision(ctx, id, store.Placement{Mode: store.Pooled, Shard: "local"}); err != nil {
			log.Fatal(err)
		}
		tctx := tenant.WithID(ctx, id)
		if err := router.Tx(tctx, func(tx *store.Tx) error {
			_, _, err := tx.Put(tctx, "notes", "n1", []byte(`{"owner":"`+id.String()+`"}`), store.IfMatch{})
			return err
		}); err != nil {
			log.Fatal(err)
		}
	}

	d, err = outbox.NewDispatcher(outbox.DispatcherOptions{Store: router,
		Tenants: outbox.TenantsFunc(func(context.Context) ([]tenant.ID, error) { return ids, nil })})
	if err != nil {
		log.Fatal(err)
	}
	err = d.Handle("mailer", func(ctx context.Context, ev store.Event) error {
		return router.ReadTx(ctx, func(tx *store.Tx) error {
			rec, err := tx.Get(ctx, ev.Collection, ev.ID)
			if err == nil {
				fmt.Printf("%s event %d: %s %s/%s -> %s\n", ev.Tenant, ev.Seq, ev.Op, ev.Collection, ev.ID, rec.Data)
			}
			return err
		})
	})
	if err != nil {
		log.Fatal(err)
	}
	// Run(ctx) does this in the background for every tenant; Dispatch
	// does it now for one.
	for _, id := range append(ids, ids...) {
		if err := d.Dispatch(ctx, id); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// acme event 1: create notes/n1 -> {"owner":"acme"}
	// globex event 1: create notes/n1 -> {"owner":"globex"}
}
