package tenanttest

import (
	"context"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var _ store.Placements = (*Placements)(nil)

// Placements is a hand-written fake of store.Placements, the placement
// source a store.Router asks where a tenant lives (the catalog, in
// production). Set PlacementFunc to make it answer as a test needs: fail
// for one tenant, fail every n-th call, or block until the context ends.
// Pass it as Options.Placements, or to store.NewRouter.
//
// Set PlacementFunc before the code under test runs: it is read without a
// lock, and may be called concurrently.
type Placements struct {
	// PlacementFunc answers Placement. When nil, every tenant is unknown.
	PlacementFunc func(ctx context.Context, id tenant.ID) (store.Placement, error)
}

// Placement calls PlacementFunc, or returns an error wrapping
// store.ErrUnknownTenant if it is nil.
func (p *Placements) Placement(ctx context.Context, id tenant.ID) (store.Placement, error) {
	if p.PlacementFunc == nil {
		return store.Placement{}, fmt.Errorf("%w %q (tenanttest.Placements has no PlacementFunc)", store.ErrUnknownTenant, id)
	}
	return p.PlacementFunc(ctx, id)
}
