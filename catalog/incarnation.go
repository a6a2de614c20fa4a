package catalog

import (
	"context"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var _ store.IncarnationStarts = (*Catalog)(nil)

// IncarnationStart implements store.IncarnationStarts: the start of the
// tenant's current incarnation (Incarnation), which a read replica must
// have caught up with before it serves the tenant.
func (c *Catalog) IncarnationStart(ctx context.Context, id tenant.ID) (time.Time, error) {
	_, at, err := c.Incarnation(ctx, id)
	return at, err
}
