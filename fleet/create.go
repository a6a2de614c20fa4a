package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Spec is a tenant to create, as a caller received it: Create checks
// every field. Nil fields take their defaults; a field that is set is
// used as given, so an empty name or tier is refused rather than
// defaulted.
type Spec struct {
	// ID is the tenant's id (see tenant.Parse).
	ID string
	// Name is the display name; nil means the id.
	Name *string
	// Tier is the service tier; nil means catalog.DefaultTier.
	Tier *string
	// Isolation is the isolation mode the caller asks for: pooled,
	// schema or database; nil lets the placement rule choose.
	Isolation *string
	// Shard is the shard the caller asks for; nil lets the placement
	// rule choose.
	Shard *string
}

// PlacementRequest is what a placement rule decides on.
type PlacementRequest struct {
	// Tenant is the new tenant.
	Tenant tenant.ID
	// Mode is the isolation mode asked for, or "" for none.
	Mode store.Mode
	// Shard is the shard asked for, or "" for none.
	Shard string
	// Shards are the fleet's shards, sorted.
	Shards []string
	// TenantsPerShard counts the tenants each shard hosts (read from the
	// catalog when called).
	TenantsPerShard func(ctx context.Context) (map[string]int, error)
}

// PlacementRule chooses where a new tenant lives. Create checks what it
// returns (the shard exists and its backend supports the mode); an error
// or a placement the fleet cannot host creates nothing.
type PlacementRule interface {
	Place(ctx context.Context, req PlacementRequest) (store.Placement, error)
}

// PlaceFunc is a PlacementRule made of a function.
type PlaceFunc func(ctx context.Context, req PlacementRequest) (store.Placement, error)

// Place calls f.
func (f PlaceFunc) Place(ctx context.Context, req PlacementRequest) (store.Placement, error) {
	return f(ctx, req)
}

// FewestTenants is the default placement rule: the mode asked for, else
// pooled; the shard asked for (it must exist), else the shard hosting the
// fewest tenants, ties going to the first by name.
var FewestTenants PlacementRule = PlaceFunc(fewestTenants)

func fewestTenants(ctx context.Context, req PlacementRequest) (store.Placement, error) {
	p := store.Placement{Mode: req.Mode, Shard: req.Shard}
	if p.Mode == "" {
		p.Mode = store.Pooled
	}
	if p.Shard != "" {
		return p, checkShard(p.Shard, req.Shards)
	}
	if len(req.Shards) == 0 {
		return p, fmt.Errorf("%w: the fleet has no shard", ErrInvalidShard)
	}
	p.Shard = req.Shards[0]
	if len(req.Shards) == 1 {
		return p, nil
	}
	counts, err := req.TenantsPerShard(ctx)
	if err != nil {
		return store.Placement{}, err
	}
	for _, n := range req.Shards[1:] {
		if counts[n] < counts[p.Shard] {
			p.Shard = n
		}
	}
	return p, nil
}

// checkShard reports whether shard is one of shards.
func checkShard(shard string, shards []string) error {
	if slices.Contains(shards, shard) {
		return nil
	}
	return fmt.Errorf("%w: there is no shard %q (shards: %s)", ErrInvalidShard, clip(shard), strings.Join(shards, ", "))
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Create creates the tenant spec describes: it checks the input, asks the
// placement rule where the tenant goes, registers it in the catalog,
// provisions its storage and applies the fleet's migrations to its own
// unit (schema and database tenants), and only then makes it active. It
// returns the active tenant.
//
// Bad input, a taken id (catalog.ErrExists) or a failing placement rule
// changes nothing. If provisioning or a migration fails, the storage is
// dropped and the catalog keeps nothing: the tenant exists, at the latest
// version, or not at all.
func (f *Fleet) Create(ctx context.Context, spec Spec) (catalog.Tenant, error) {
	id, err := tenant.Parse(spec.ID)
	if err != nil {
		return catalog.Tenant{}, err
	}
	req := PlacementRequest{Tenant: id, Shards: f.Shards(), TenantsPerShard: f.cat.CountByShard}
	if spec.Isolation != nil {
		if req.Mode, err = store.ParseMode(*spec.Isolation); err != nil {
			return catalog.Tenant{}, err
		}
	}
	if spec.Shard != nil {
		if req.Shard = *spec.Shard; req.Shard == "" {
			return catalog.Tenant{}, fmt.Errorf("%w: the shard is empty; name a shard or leave it out", ErrInvalidShard)
		}
		if err := checkShard(req.Shard, req.Shards); err != nil {
			return catalog.Tenant{}, err
		}
	}
	p, err := f.place(ctx, req)
	if err != nil {
		return catalog.Tenant{}, err
	}
	t := catalog.Tenant{ID: id, Name: id.String(), Tier: catalog.DefaultTier, Placement: p}
	if spec.Tier != nil {
		t.Tier = *spec.Tier
	}
	if err := catalog.ValidTier(t.Tier); err != nil {
		return catalog.Tenant{}, err
	}
	if spec.Name != nil {
		t.Name = *spec.Name
	}
	if err := catalog.ValidName(t.Name); err != nil {
		return catalog.Tenant{}, err
	}
	return f.cat.CreateTenant(ctx, t, f.provision)
}

// place runs the placement rule and checks its answer.
func (f *Fleet) place(ctx context.Context, req PlacementRequest) (store.Placement, error) {
	p, err := f.rule.Place(ctx, req)
	if err != nil {
		if errors.Is(err, ErrInvalidShard) {
			return store.Placement{}, err
		}
		return store.Placement{}, fmt.Errorf("%w: tenant %s: %w", ErrPlacement, req.Tenant, err)
	}
	if err := checkShard(p.Shard, req.Shards); err != nil {
		return store.Placement{}, fmt.Errorf("%w: the rule chose %s: %w", ErrPlacement, p.Shard, err)
	}
	if err := f.router.Supports(p); err != nil {
		if req.Mode != "" && p.Mode == req.Mode {
			return store.Placement{}, err // the mode asked for is not available there
		}
		return store.Placement{}, fmt.Errorf("%w: the rule chose %s on %s: %w", ErrPlacement, p.Mode, p.Shard, err)
	}
	return p, nil
}

// provision prepares the tenant's storage and brings its own unit to the
// latest migration; on failure it drops what it made.
func (f *Fleet) provision(ctx context.Context, id tenant.ID, p store.Placement) error {
	if f.keys != nil {
		// A new incarnation gets new keys, whatever an earlier one with
		// the same id left behind.
		if _, err := f.keys.Destroy(ctx, id); err != nil {
			return fmt.Errorf("encryption keys: %w", err)
		}
		if err := f.keys.Create(ctx, id); err != nil {
			return fmt.Errorf("encryption keys: %w", err)
		}
	}
	if err := f.router.Provision(ctx, id, p); err != nil {
		return err
	}
	if len(f.ms) == 0 || p.Mode == store.Pooled {
		return nil // a pooled tenant shares its shard's pooled unit
	}
	u := migrate.Unit{Shard: p.Shard, Mode: p.Mode, Tenant: id}
	v, err := f.migrateUnit(ctx, u)
	if err == nil && v != migrate.Latest(f.ms) {
		err = fmt.Errorf("unit %s is at version %d, the fleet's migrations end at %d "+
			"(give the backend and the fleet the same migrations)", u, v, migrate.Latest(f.ms))
	}
	if err != nil {
		if derr := f.router.Drop(context.WithoutCancel(ctx), id, p); derr != nil {
			err = errors.Join(err, fmt.Errorf("drop the new storage: %w", derr))
		}
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// migrateUnit brings unit u to the latest migration and returns its
// version. A unit the backend already provisioned with the migrations (its
// Options.Migrations) is only read.
func (f *Fleet) migrateUnit(ctx context.Context, u migrate.Unit) (int, error) {
	a := f.appliers[u.Shard]
	if vr, ok := a.(migrate.VersionReader); ok {
		vs, err := vr.UnitVersions(ctx, []migrate.Unit{u})
		if err != nil {
			return 0, err
		}
		if v, ok := vs[u]; ok && v == migrate.Latest(f.ms) {
			return v, nil
		}
	}
	return a.Apply(ctx, u, f.ms)
}
