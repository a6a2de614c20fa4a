package outbox_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/bulkhead-dev/bulkhead/outbox"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

// BenchmarkDispatch: the cost per event of consuming one tenant's outbox
// (SQLite, pooled) in batches of 100 with a handler that does nothing:
//
//   - baseline: what a team writes by hand with the store alone: read the
//     position and a page of events in one read transaction, handle them,
//     save the position in one write transaction;
//   - dispatcher: outbox.Dispatcher.Dispatch, which does the same plus the
//     re-entry of each event's tenant, the foreign-event check and a
//     position that never moves back.
//
// Compare the two ns/op of one run (go test -bench Dispatch ./outbox).
func BenchmarkDispatch(b *testing.B) {
	for _, name := range []string{"baseline", "dispatcher"} {
		b.Run(name, func(b *testing.B) {
			env := tenanttest.New(b, tenanttest.Options{})
			ctx := env.Tenant(b, "acme", store.Pooled)
			id := tenant.MustParse("acme")
			for done := 0; done < b.N; {
				n := min(1000, b.N-done)
				if err := env.Router.Tx(ctx, func(tx *store.Tx) error {
					for i := range n {
						if _, _, err := tx.Put(ctx, "notes", fmt.Sprintf("n%d", done+i), []byte(`{"v":1}`), store.IfMatch{}); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				done += n
			}
			handled := 0
			handle := func(context.Context, store.Event) error { handled++; return nil }
			b.ResetTimer()
			if name == "baseline" {
				for handled < b.N {
					var evs []store.Event
					if err := env.Router.ReadTx(ctx, func(tx *store.Tx) error {
						off, err := tx.EventOffset(ctx, "bench")
						if err == nil {
							evs, _, err = tx.Events(ctx, off, 100, nil)
						}
						return err
					}); err != nil {
						b.Fatal(err)
					}
					for _, ev := range evs {
						if err := handle(ctx, ev); err != nil {
							b.Fatal(err)
						}
					}
					if err := env.Router.Tx(ctx, func(tx *store.Tx) error {
						return tx.SetEventOffset(ctx, "bench", evs[len(evs)-1].Seq)
					}); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				d, err := outbox.NewDispatcher(outbox.DispatcherOptions{Store: env.Router, Batch: 100,
					Tenants: outbox.TenantsFunc(func(context.Context) ([]tenant.ID, error) { return []tenant.ID{id}, nil })})
				if err != nil {
					b.Fatal(err)
				}
				must(b, d.Handle("bench", handle))
				if err := d.Dispatch(context.Background(), id); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if handled != b.N {
				b.Fatalf("handled %d events, want %d", handled, b.N)
			}
		})
	}
}
