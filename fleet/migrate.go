package fleet

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
)

// MigrateOptions configures Migrate.
type MigrateOptions struct {
	// Concurrency bounds how many units are migrated at once;
	// migrate.DefaultConcurrency if zero.
	Concurrency int
	// Progress, if set, is told when each unit starts and finishes. Calls
	// are serialized.
	Progress func(migrate.Progress)
}

// Migrate applies the fleet's migrations to every unit that is behind:
// the shards' pooled tables first, then schema and database tenants (see
// migrate.Run). Versions are read from the units themselves. When a unit
// fails, no further unit starts, units in flight finish, and the error
// wraps a *migrate.UnitError naming the tenant; every other unit stays on
// the version it had or reached, and the report says which units were
// migrated, which failed and which were not started.
func (f *Fleet) Migrate(ctx context.Context, opts MigrateOptions) (migrate.Report, error) {
	p, err := f.plan(ctx)
	if err != nil {
		return migrate.Report{}, err
	}
	p.Concurrency, p.Progress = opts.Concurrency, opts.Progress
	return migrate.Run(ctx, p)
}

// plan is a migration of every unit of the fleet.
func (f *Fleet) plan(ctx context.Context) (migrate.Plan, error) {
	units, err := f.cat.MigrationUnits(ctx, f.shards...)
	if err != nil {
		return migrate.Plan{}, err
	}
	return migrate.Plan{Units: units, Appliers: f.appliers, Migrations: f.ms}, nil
}

// TenantStatus is one tenant as Status reports it.
type TenantStatus struct {
	catalog.Tenant
	// Unit names the migration unit that holds the tenant's own tables:
	// its schema or database ("main/schema/acme"), or its shard's pooled
	// tables ("main/pooled"). It is empty for a tenant without one: pooled
	// on SQLite (no team tables there), or being created or offboarded.
	Unit string `json:"unit,omitempty"`
	// Version is the unit's migration version, read from the unit.
	Version int `json:"version"`
	// Pending is how many of the fleet's migrations the unit lacks.
	Pending int `json:"pending"`
}

// Report is the fleet's status.
type Report struct {
	// Latest is the newest migration's version.
	Latest int `json:"latest"`
	// Units are the migration units and their versions, as `bulkhead
	// migrate status` shows them.
	Units migrate.Report `json:"units"`
	// Tenants are every tenant, by id.
	Tenants []TenantStatus `json:"tenants"`
}

// Status reports every tenant's state, placement and migration version,
// and every unit's version, read from the units themselves. It changes
// nothing.
func (f *Fleet) Status(ctx context.Context) (Report, error) {
	p, err := f.plan(ctx)
	if err != nil {
		return Report{}, err
	}
	units, err := p.Status(ctx)
	if err != nil {
		return Report{}, err
	}
	byName := make(map[string]migrate.UnitStatus, len(units.Units))
	for _, u := range units.Units {
		byName[u.Name] = u
	}
	rep := Report{Latest: units.Latest, Units: units, Tenants: []TenantStatus{}}
	after := ""
	for {
		page, err := f.cat.ListTenants(ctx, after, 1000)
		if err != nil {
			return Report{}, err
		}
		for _, t := range page {
			rep.Tenants = append(rep.Tenants, tenantStatus(t, byName))
		}
		if len(page) < 1000 {
			return rep, nil
		}
		after = page[len(page)-1].ID.String()
	}
}

// tenantStatus places t on its unit, if the unit is among units.
func tenantStatus(t catalog.Tenant, units map[string]migrate.UnitStatus) TenantStatus {
	s := TenantStatus{Tenant: t}
	if t.State != catalog.Active && t.State != catalog.Suspended {
		return s
	}
	u := migrate.Unit{Shard: t.Placement.Shard, Mode: t.Placement.Mode}
	if u.Mode != store.Pooled {
		u.Tenant = t.ID
	}
	us, ok := units[u.String()]
	if !ok {
		return s
	}
	s.Unit, s.Version, s.Pending = us.Name, us.Version, max(0, us.Latest-us.Version)
	return s
}
