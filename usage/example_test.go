package usage_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/usage"
)

// placements puts every tenant in pooled mode on the one SQLite shard.
type placements struct{}

func (placements) Placement(context.Context, tenant.ID) (store.Placement, error) {
	return store.Placement{Mode: store.Pooled, Shard: "local"}, nil
}

// A team's write path keeps the tracker current at no extra cost, and a
// sweep fills in the tenants that have not written since the start.
func Example() {
	dir, err := os.MkdirTemp("", "usage-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	be, err := sqlite.Open(dir, sqlite.Options{})
	if err != nil {
		log.Fatal(err)
	}
	router, err := store.NewRouter(store.Config{Placements: placements{}, Backends: map[string]store.Backend{"local": be}})
	if err != nil {
		log.Fatal(err)
	}
	defer router.Close()
	acme, globex := tenant.MustParse("acme"), tenant.MustParse("globex")
	for _, id := range []tenant.ID{acme, globex} {
		if err := router.Provision(context.Background(), id, store.Placement{Mode: store.Pooled, Shard: "local"}); err != nil {
			log.Fatal(err)
		}
	}

	tr := usage.NewTracker(0)
	ctx := tenant.WithID(context.Background(), acme)
	err = tr.WriteTx(ctx, router, func(tx *store.Tx) error {
		_, _, err := tx.Put(ctx, "invoices", "inv-1", []byte(`{"total":42}`), store.IfMatch{})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("after acme's write:", tr.Snapshot(5).Top)

	tenants := usage.TenantsFunc(func(_ context.Context, after string, _ int) ([]usage.Tenant, error) {
		if after != "" {
			return nil, nil
		}
		return []usage.Tenant{{ID: acme, Serving: true}, {ID: globex, Serving: true}}, nil
	})
	sw := usage.NewSweeper(tr, usage.SweeperOptions{Router: router, Tenants: tenants})
	if err := sw.Sweep(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println("after a sweep:", tr.Snapshot(5).Top)
	// Output:
	// after acme's write: [{acme {1 12}}]
	// after a sweep: [{acme {1 12}} {globex {0 0}}]
}
