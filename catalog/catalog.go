// Package catalog is the control-plane registry: tenants, their placement
// and state, and their API keys, kept in <data-dir>/control.db (SQLite).
// Lookups on the request path (Authenticate, Placement) are cached; every
// change through the Catalog invalidates the cache at once, so revocation
// and suspension take effect on the next request.
package catalog

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Options configures Open.
type Options struct{}

// Catalog is the registry. It is safe for concurrent use.
type Catalog struct{}

// Open opens (creating if needed) the catalog database at path.
func Open(path string, opts Options) (*Catalog, error) { panic("in progress") }

// Close closes the catalog.
func (c *Catalog) Close() error { panic("in progress") }

// Ping checks the catalog database.
func (c *Catalog) Ping(ctx context.Context) error { panic("in progress") }

// ProvisionFunc prepares or removes a tenant's storage (store.Router.Provision / Drop).
type ProvisionFunc func(ctx context.Context, id tenant.ID, p store.Placement) error

// CreateTenant registers t (ID, Name, Tier, Placement set by the caller;
// State and timestamps set here), calls provision, and makes the tenant
// active. ErrExists if the id is taken; if provision fails nothing is left behind.
func (c *Catalog) CreateTenant(ctx context.Context, t Tenant, provision ProvisionFunc) (Tenant, error) {
	panic("in progress")
}

// Tenant returns the tenant or ErrNotFound.
func (c *Catalog) Tenant(ctx context.Context, id tenant.ID) (Tenant, error) { panic("in progress") }

// ListTenants returns up to limit tenants with ids after after, by id.
func (c *Catalog) ListTenants(ctx context.Context, after string, limit int) ([]Tenant, error) {
	panic("in progress")
}

// UpdateTenant applies u and returns the tenant.
func (c *Catalog) UpdateTenant(ctx context.Context, id tenant.ID, u TenantUpdate) (Tenant, error) {
	panic("in progress")
}

// Suspend and Resume switch an active tenant to suspended and back.
func (c *Catalog) Suspend(ctx context.Context, id tenant.ID) (Tenant, error) { panic("in progress") }
func (c *Catalog) Resume(ctx context.Context, id tenant.ID) (Tenant, error)  { panic("in progress") }

// Offboard marks the tenant deleting, revokes all its keys, calls drop, and
// removes the tenant. Re-running it finishes an interrupted offboarding.
func (c *Catalog) Offboard(ctx context.Context, id tenant.ID, drop ProvisionFunc) error {
	panic("in progress")
}

// ResumeOffboarding finishes every offboarding a crash interrupted.
func (c *Catalog) ResumeOffboarding(ctx context.Context, drop ProvisionFunc) error {
	panic("in progress")
}

// Placement implements store.Placements: active and suspended tenants only.
func (c *Catalog) Placement(ctx context.Context, id tenant.ID) (store.Placement, error) {
	panic("in progress")
}

// CreateKey issues a key; the token bk_<key_id>_<secret> is returned once.
func (c *Catalog) CreateKey(ctx context.Context, id tenant.ID, role Role, name string) (Key, string, error) {
	panic("in progress")
}

// RevokeKey revokes the tenant's key; ErrKeyNotFound if it is not this tenant's.
func (c *Catalog) RevokeKey(ctx context.Context, id tenant.ID, keyID string) error {
	panic("in progress")
}

// ListKeys returns the tenant's keys.
func (c *Catalog) ListKeys(ctx context.Context, id tenant.ID) ([]Key, error) { panic("in progress") }

// Authenticate resolves a tenant API token: ErrUnauthenticated for a
// malformed, unknown or revoked token (or a deleted tenant), ErrSuspended
// for a suspended tenant.
func (c *Catalog) Authenticate(ctx context.Context, token string) (Principal, error) {
	panic("in progress")
}
