package usage

import (
	"context"
	"errors"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Router runs tenant-scoped transactions for the tenant in the context;
// *store.Router implements it.
type Router interface {
	Tx(ctx context.Context, fn func(*store.Tx) error) error
	ReadTx(ctx context.Context, fn func(*store.Tx) error) error
}

var _ Router = (*store.Router)(nil)

// WriteTx runs fn in a write transaction of the tenant in ctx (r.Tx) and,
// once it has committed, records the usage its writes left, which the
// store knows without another query (store.Tx.UsageAfterWrites). A
// transaction that fails, that wrote nothing or whose backend keeps no
// usage changes nothing in t.
func (t *Tracker) WriteTx(ctx context.Context, r Router, fn func(tx *store.Tx) error) error {
	var after store.Usage
	var known bool
	mark := t.Begin()
	err := r.Tx(ctx, func(tx *store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		after, known = tx.UsageAfterWrites()
		return nil
	})
	if err == nil && known {
		t.ObserveContext(ctx, after, mark)
	}
	return err
}

// ObserveContext is Observe for the tenant in ctx (nothing without one).
func (t *Tracker) ObserveContext(ctx context.Context, u store.Usage, since Mark) {
	if id, err := tenant.FromContext(ctx); err == nil {
		t.Observe(id, u, since)
	}
}

// Read returns the records and bytes of the tenant in ctx. Where the
// backend keeps a usage row (the quota's, store.UsageTx), that row alone
// is read: one small read per tenant. Elsewhere the records are counted
// and the bytes are 0.
func Read(ctx context.Context, r Router) (store.Usage, error) {
	var u store.Usage
	err := r.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		u, err = tx.Usage(ctx)
		if !errors.Is(err, store.ErrUsageUnsupported) {
			return err
		}
		cs, err := tx.Collections(ctx)
		if err != nil {
			return err
		}
		u = store.Usage{}
		for _, c := range cs {
			u.Records += c.Records
		}
		return nil
	})
	return u, err
}
