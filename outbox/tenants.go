package outbox

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Tenants lists the tenants whose outboxes to visit: those the router
// serves (active and suspended ones).
type Tenants interface {
	ServingTenants(ctx context.Context) ([]tenant.ID, error)
}

// TenantsFunc adapts a function to Tenants.
type TenantsFunc func(ctx context.Context) ([]tenant.ID, error)

// ServingTenants implements Tenants.
func (f TenantsFunc) ServingTenants(ctx context.Context) ([]tenant.ID, error) { return f(ctx) }

// CatalogTenants returns the active and suspended tenants of c, by id.
func CatalogTenants(c *catalog.Catalog) Tenants {
	return TenantsFunc(func(ctx context.Context) ([]tenant.ID, error) {
		var out []tenant.ID
		after := ""
		for {
			page, err := c.ListTenants(ctx, after, 1000)
			if err != nil {
				return nil, err
			}
			for _, t := range page {
				if t.State == catalog.Active || t.State == catalog.Suspended {
					out = append(out, t.ID)
				}
			}
			if len(page) < 1000 {
				return out, nil
			}
			after = page[len(page)-1].ID.String()
		}
	})
}

// Runner runs fn in a write transaction of the tenant in ctx, committing
// if fn returns nil; *store.Router implements it.
type Runner interface {
	Tx(ctx context.Context, fn func(*store.Tx) error) error
}

// Store runs write and read-only transactions of the tenant in ctx;
// *store.Router implements it.
type Store interface {
	Runner
	ReadTx(ctx context.Context, fn func(*store.Tx) error) error
}
