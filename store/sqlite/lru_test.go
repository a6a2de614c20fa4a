package sqlite

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func openIDs(b *Backend) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for id := range b.dbs {
		out = append(out, id.String())
	}
	slices.Sort(out)
	return out
}

func TestLRUClosesLeastRecentlyUsedIdleFile(t *testing.T) {
	b := open(t, t.TempDir(), Options{MaxOpenDatabases: 2})
	e := storetest.NewEnv(t, b, store.Database)
	ctxs := map[string]context.Context{}
	for _, n := range []string{"t0", "t1", "t2"} {
		ctxs[n] = e.Tenant(t, n)
		if got := b.OpenDatabases(); got > 2 {
			t.Fatalf("after provisioning %s: %d open, bound 2", n, got)
		}
	}
	touch := func(n string) {
		t.Helper()
		put(t, e, ctxs[n], "c", "r", `{"owner":"`+n+`"}`)
	}
	touch("t0")
	touch("t1")
	touch("t0") // t1 is now least recently used
	touch("t2")
	if got := openIDs(b); !slices.Equal(got, []string{"t0", "t2"}) {
		t.Fatalf("open after t0 t1 t0 t2: %v, want [t0 t2] (t1 least recently used)", got)
	}
	touch("t1")
	if got := openIDs(b); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Fatalf("open after t1: %v, want [t1 t2]", got)
	}
}

func TestLRUNeverClosesAFileWithATransactionInFlight(t *testing.T) {
	b := open(t, t.TempDir(), Options{MaxOpenDatabases: 2})
	e := storetest.NewEnv(t, b, store.Database)
	names := []string{"t0", "t1", "t2", "t3"}
	var txs []*store.Tx
	for _, n := range names {
		ctx := e.Tenant(t, n)
		put(t, e, ctx, "c", "r", `{"owner":"`+n+`"}`)
		tx, err := e.Router.Begin(ctx, store.TxOptions{})
		if err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	if got := b.OpenDatabases(); got != len(names) {
		t.Fatalf("%d open with %d transactions in flight, want %d (busy files stay open)", got, len(names), len(names))
	}
	for i, tx := range txs { // every held transaction still works on its own file
		ctx := tenant.WithID(context.Background(), tx.Tenant())
		rec, err := tx.Get(ctx, "c", "r")
		if err != nil || string(rec.Data) != `{"owner":"`+names[i]+`"}` {
			t.Fatalf("%s: %s %v", names[i], rec.Data, err)
		}
		if _, _, err := tx.Put(ctx, "c", "r2", []byte(`{}`), store.IfMatch{}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.OpenDatabases(); got > 2 {
		t.Fatalf("%d open once idle, bound 2", got)
	}
}

// TestLRUUnderConcurrentUse has workers write and read across six tenants
// with room for two open files: every tenant must end with exactly its own
// records, and once idle at most two files stay open.
func TestLRUUnderConcurrentUse(t *testing.T) {
	const tenants, workers, perWorker, bound = 6, 4, 30, 2
	b := open(t, t.TempDir(), Options{MaxOpenDatabases: bound})
	e := storetest.NewEnv(t, b, store.Database)
	ctxs := make([]context.Context, tenants)
	for i := range ctxs {
		ctxs[i] = e.Tenant(t, fmt.Sprintf("t%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				ti := (w*7 + i*5) % tenants
				ctx := ctxs[ti]
				err := e.Router.Tx(ctx, func(tx *store.Tx) error {
					_, _, err := tx.Put(ctx, "c", fmt.Sprintf("w%d-%02d", w, i), []byte(fmt.Sprintf(`{"owner":"t%d"}`, ti)), store.IfMatch{})
					return err
				})
				if err == nil {
					err = e.Router.ReadTx(ctx, func(tx *store.Tx) error {
						_, err := tx.List(ctx, "c", store.ListOptions{Limit: 5})
						return err
					})
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d op %d on t%d: %w", w, i, ti, err)
					return
				}
				// At most bound idle files plus one per busy worker.
				if got := b.OpenDatabases(); got > max(bound, workers) {
					errs <- fmt.Errorf("%d files open, bound %d with %d workers", got, bound, workers)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := b.OpenDatabases(); got > bound {
		t.Fatalf("%d files open once idle, bound %d", got, bound)
	}
	total := 0
	for ti, ctx := range ctxs {
		var page store.Page
		if err := e.Router.ReadTx(ctx, func(tx *store.Tx) error {
			var err error
			page, err = tx.List(ctx, "c", store.ListOptions{Limit: store.MaxLimit})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Items {
			if string(r.Data) != fmt.Sprintf(`{"owner":"t%d"}`, ti) {
				t.Fatalf("tenant t%d holds %s: %s", ti, r.ID, r.Data)
			}
		}
		total += len(page.Items)
	}
	if total != workers*perWorker {
		t.Fatalf("%d records across tenants, want %d", total, workers*perWorker)
	}
}
