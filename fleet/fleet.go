package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Sentinel errors callers branch on with errors.Is. Invalid input is
// reported with the sentinel of the package that defines the rule:
// tenant.ErrInvalid for an id, store.ErrInvalidIsolation and
// store.ErrIsolationUnsupported for a mode, catalog.ErrInvalidName and
// catalog.ErrInvalidTier for a name or tier; a taken id is
// catalog.ErrExists, an unknown tenant catalog.ErrNotFound.
var (
	// ErrInvalidShard: the requested shard is empty or not one of the
	// fleet's shards.
	ErrInvalidShard = errors.New("invalid shard")
	// ErrPlacement: the placement rule failed or chose a placement the
	// fleet cannot host; nothing was created.
	ErrPlacement = errors.New("no placement for the tenant")
	// ErrNoApplier: migrations are configured but a shard's backend cannot
	// apply them (it is no migrate.Applier).
	ErrNoApplier = errors.New("backend cannot apply migrations")
)

// Registry is what a Fleet needs of the control-plane registry: tenants,
// their placements and states. *catalog.Catalog implements it.
type Registry interface {
	store.Placements
	CreateTenant(ctx context.Context, t catalog.Tenant, provision catalog.ProvisionFunc) (catalog.Tenant, error)
	Tenant(ctx context.Context, id tenant.ID) (catalog.Tenant, error)
	ListTenants(ctx context.Context, after string, limit int) ([]catalog.Tenant, error)
	CountByShard(ctx context.Context) (map[string]int, error)
	Suspend(ctx context.Context, id tenant.ID) (catalog.Tenant, error)
	Resume(ctx context.Context, id tenant.ID) (catalog.Tenant, error)
	Offboard(ctx context.Context, id tenant.ID, drop catalog.ProvisionFunc) error
	ResumeOffboarding(ctx context.Context, drop catalog.ProvisionFunc) error
	MigrationUnits(ctx context.Context, shards ...string) ([]migrate.Unit, error)
}

var _ Registry = (*catalog.Catalog)(nil)

// Config configures New.
type Config struct {
	// Catalog is the registry of tenants (required).
	Catalog Registry
	// Backends maps shard names to backends (at least one). With
	// Migrations, each must be a migrate.Applier (both of Bulkhead's are).
	Backends map[string]store.Backend
	// Migrations are the team's own SQL migrations, as migrate.Load
	// returns them; none for a service without tables of its own.
	Migrations []migrate.Migration
	// Placement chooses new tenants' placements; nil means FewestTenants.
	Placement PlacementRule
	// Router holds the other settings of the router New opens: the cursor
	// key (needed only to list records), the clock, quotas. Leave its
	// Placements and Backends unset: they are Catalog and Backends.
	Router store.Config
	// Keys, if not nil, gives each new tenant fresh encryption keys and
	// destroys an offboarded tenant's before its data is dropped
	// (crypto-shredding); *keys.Manager is one.
	Keys Keys
}

// Keys makes and destroys tenants' encryption keys (package keys).
type Keys interface {
	// Create makes the tenant's keys if it has none.
	Create(ctx context.Context, id tenant.ID) error
	// Destroy destroys the tenant's keys and names them; it is
	// idempotent.
	Destroy(ctx context.Context, id tenant.ID) ([]string, error)
}

// Fleet creates, offboards, migrates and reports on tenants. It is safe
// for concurrent use.
type Fleet struct {
	cat      Registry
	router   *store.Router
	appliers map[string]migrate.Applier
	shards   []string // sorted
	ms       []migrate.Migration
	rule     PlacementRule
	keys     Keys

	catalog     *catalog.Catalog // Config.Catalog if it is one; nil otherwise
	ownsCatalog bool             // OpenPostgres or OpenSQLite opened it: Close closes it
	closeOnce   sync.Once
	closeErr    error // Close's result; set once by closeOnce
}

// New returns a Fleet over cfg and opens its router. Close closes the
// router and with it the backends; the catalog stays open.
func New(cfg Config) (*Fleet, error) {
	if cfg.Catalog == nil {
		return nil, errors.New("fleet: Config.Catalog is required")
	}
	if cfg.Router.Placements != nil || cfg.Router.Backends != nil {
		return nil, errors.New("fleet: give the catalog and backends in Config.Catalog and Config.Backends, not in Config.Router")
	}
	if err := migrate.Check(cfg.Migrations); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	appliers := map[string]migrate.Applier{}
	for name, b := range cfg.Backends {
		a, ok := b.(migrate.Applier)
		if !ok && len(cfg.Migrations) > 0 {
			return nil, fmt.Errorf("fleet: shard %s: %w", name, ErrNoApplier)
		}
		if ok {
			appliers[name] = a
		}
	}
	rc := cfg.Router
	rc.Placements, rc.Backends = cfg.Catalog, cfg.Backends
	router, err := store.NewRouter(rc)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	rule := cfg.Placement
	if rule == nil {
		rule = FewestTenants
	}
	f := &Fleet{cat: cfg.Catalog, router: router, appliers: appliers, shards: router.Shards(),
		ms: cfg.Migrations, rule: rule, keys: cfg.Keys}
	f.catalog, _ = cfg.Catalog.(*catalog.Catalog)
	return f, nil
}

// Router returns the router over the fleet's backends: the only way to
// the tenants' data.
func (f *Fleet) Router() *store.Router { return f.router }

// Catalog returns the catalog the fleet registers its tenants in: the one
// OpenPostgres or OpenSQLite opened, or Config.Catalog when it is a
// *catalog.Catalog; nil for any other Registry. It is how a service on an
// opened fleet issues API keys (Catalog().CreateKey) and authenticates
// them (catalogauth.Keys).
func (f *Fleet) Catalog() *catalog.Catalog { return f.catalog }

// Shards returns the names of the fleet's shards, sorted.
func (f *Fleet) Shards() []string { return append([]string(nil), f.shards...) }

// Latest is the version of the newest migration (0 without migrations).
func (f *Fleet) Latest() int { return migrate.Latest(f.ms) }

// Close closes the router and its backends, and the catalog of a fleet
// OpenPostgres or OpenSQLite opened (first: on PostgreSQL it uses a
// backend's pool); the catalog of a fleet made by New stays open. Calls
// after the first return the first's result.
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() {
		var errs []error
		if f.ownsCatalog {
			if err := f.catalog.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close catalog: %w", err))
			}
		}
		f.closeErr = errors.Join(append(errs, f.router.Close())...)
	})
	return f.closeErr
}

// Suspend switches an active tenant to suspended: its credentials are
// refused from the next request on. A suspended tenant stays so.
func (f *Fleet) Suspend(ctx context.Context, id tenant.ID) (catalog.Tenant, error) {
	return f.setState(ctx, id, catalog.Suspended, f.cat.Suspend)
}

// Resume switches a suspended tenant back to active. An active tenant
// stays so.
func (f *Fleet) Resume(ctx context.Context, id tenant.ID) (catalog.Tenant, error) {
	return f.setState(ctx, id, catalog.Active, f.cat.Resume)
}

// setState makes the change; a tenant that reached the wanted state
// meanwhile is not an error.
func (f *Fleet) setState(ctx context.Context, id tenant.ID, want catalog.State,
	change func(context.Context, tenant.ID) (catalog.Tenant, error)) (catalog.Tenant, error) {
	t, err := change(ctx, id)
	if errors.Is(err, catalog.ErrInvalidState) {
		if cur, err2 := f.cat.Tenant(ctx, id); err2 == nil && cur.State == want {
			return cur, nil
		}
	}
	return t, err
}

// Offboard removes tenant id: its credentials stop working at once, its
// data is dropped, and its id is freed, so a tenant created again with it
// starts empty, at version 0 of its own unit. If dropping the data fails
// the tenant stays in state deleting, and Offboard (or ResumeOffboarding)
// finishes the job when called again. A tenant that does not exist (any
// more) gives an error wrapping catalog.ErrNotFound and changes nothing.
func (f *Fleet) Offboard(ctx context.Context, id tenant.ID) error {
	if id.IsZero() {
		return tenant.ErrMissing
	}
	_, err := f.OffboardShredding(ctx, id)
	return err
}

// OffboardShredding is Offboard, and returns the names of the encryption
// keys it destroyed (Config.Keys).
func (f *Fleet) OffboardShredding(ctx context.Context, id tenant.ID) ([]string, error) {
	if id.IsZero() {
		return nil, tenant.ErrMissing
	}
	var destroyed []string
	err := f.cat.Offboard(ctx, id, func(ctx context.Context, id tenant.ID, p store.Placement) error {
		names, err := f.drop(ctx, id, p)
		destroyed = append(destroyed, names...)
		return err
	})
	return destroyed, err
}

// drop shreds the tenant's keys, then drops its data, then shreds again
// (keys a request in flight may have made meanwhile).
func (f *Fleet) drop(ctx context.Context, id tenant.ID, p store.Placement) ([]string, error) {
	var names []string
	if f.keys != nil {
		n, err := f.keys.Destroy(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("destroy the keys of %s: %w", id, err)
		}
		names = n
	}
	if err := f.router.Drop(ctx, id, p); err != nil {
		return names, err
	}
	if f.keys != nil {
		n, err := f.keys.Destroy(ctx, id)
		if err != nil {
			return names, fmt.Errorf("destroy the keys of %s: %w", id, err)
		}
		names = append(names, n...)
	}
	return names, nil
}

// ResumeOffboarding finishes every offboarding a crash or a failed drop
// interrupted, and removes tenants whose creation was interrupted (with
// whatever storage they got). A server calls it when it starts.
func (f *Fleet) ResumeOffboarding(ctx context.Context) error {
	return f.cat.ResumeOffboarding(ctx, func(ctx context.Context, id tenant.ID, p store.Placement) error {
		_, err := f.drop(ctx, id, p)
		return err
	})
}
