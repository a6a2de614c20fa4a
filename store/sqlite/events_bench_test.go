package sqlite

import (
	"context"
	"fmt"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
)

// BenchmarkEventsPage reads one tenant's outbox (10,000 events, pooled) a
// page of 500 events per read transaction, as the NATS relay does.
// Reported per event; the relay's publish rate follows it.
func BenchmarkEventsPage(b *testing.B) {
	const n, page = 10_000, 500
	be, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	e := storetest.NewEnv(b, be, store.Pooled)
	ctx := e.Tenant(b, "acme")
	for i := 0; i < n; i += 1000 {
		err := e.Router.Tx(ctx, func(tx *store.Tx) error {
			for r := i; r < i+1000; r++ {
				data := fmt.Sprintf(`{"n":%d,"title":"order %d","tags":["a","b"]}`, r, r)
				if _, _, err := tx.Put(ctx, "orders", fmt.Sprintf("ord-%05d", r), []byte(data), store.IfMatch{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	events := 0
	for b.Loop() {
		for after := int64(0); after < n; {
			var evs []store.Event
			err := e.Router.ReadTx(ctx, func(tx *store.Tx) error {
				var err error
				evs, _, err = tx.Events(context.Background(), after, page, nil)
				return err
			})
			if err != nil || len(evs) == 0 {
				b.Fatalf("read after %d: %d events, %v", after, len(evs), err)
			}
			after = evs[len(evs)-1].Seq
			events += len(evs)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
}
