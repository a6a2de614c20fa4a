package catalog

import (
	"context"
	"fmt"
	"sort"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var _ migrate.State = (*Catalog)(nil)

// Versions implements migrate.State: every unit's recorded migration
// version, read in one query. Units never migrated are absent (version 0).
func (c *Catalog) Versions(ctx context.Context) (map[migrate.Unit]int, error) {
	rows, err := c.query(ctx, c.db, `SELECT shard, mode, tenant_id, version FROM unit_versions`)
	if err != nil {
		return nil, fmt.Errorf("read migration versions: %w", err)
	}
	defer rows.Close()
	out := map[migrate.Unit]int{}
	for rows.Next() {
		var shard, mode, tid string
		var v int
		if err := rows.Scan(&shard, &mode, &tid, &v); err != nil {
			return nil, fmt.Errorf("read migration versions: %w", err)
		}
		u := migrate.Unit{Shard: shard, Mode: store.Mode(mode)}
		if tid != "" {
			if u.Tenant, err = tenant.Parse(tid); err != nil {
				return nil, fmt.Errorf("catalog holds an invalid tenant id in unit_versions: %w", err)
			}
		}
		out[u] = v
	}
	return out, rows.Err()
}

// SetVersion implements migrate.State: it records unit u at version v.
// A tenant's versions are removed when it is offboarded, so a tenant
// created again with the same id starts from version 0.
func (c *Catalog) SetVersion(ctx context.Context, u migrate.Unit, v int) error {
	if _, err := store.ParseMode(string(u.Mode)); err != nil {
		return fmt.Errorf("set migration version of %s: %w", u, err)
	}
	if u.Shard == "" || (u.Tenant.IsZero() != (u.Mode == store.Pooled)) {
		return fmt.Errorf("set migration version: invalid unit %q (a pooled unit names a shard and no tenant; schema and database units name both)", u)
	}
	tid := ""
	if !u.Tenant.IsZero() {
		tid = u.Tenant.String()
	}
	_, err := c.exec(ctx, c.db, `INSERT INTO unit_versions (shard, mode, tenant_id, version, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (shard, mode, tenant_id) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`,
		u.Shard, string(u.Mode), tid, v, micros(c.now()))
	if err != nil {
		return fmt.Errorf("set migration version of %s: %w", u, err)
	}
	return nil
}

// MigrationUnits lists the units the fleet's migrations apply to: one
// pooled unit per shard in shards (the configured shards) or hosting a
// pooled tenant, then one unit per schema or database tenant that is active
// or suspended. Pooled units come first, by shard; tenant units follow by
// shard and tenant id. Tenants being provisioned or offboarded are left out.
func (c *Catalog) MigrationUnits(ctx context.Context, shards ...string) ([]migrate.Unit, error) {
	rows, err := c.query(ctx, c.db, `SELECT id, mode, shard FROM tenants WHERE state IN (?, ?) ORDER BY shard, id`,
		string(Active), string(Suspended))
	if err != nil {
		return nil, fmt.Errorf("list migration units: %w", err)
	}
	defer rows.Close()
	pooled := map[string]bool{}
	for _, s := range shards {
		pooled[s] = true
	}
	var tenants []migrate.Unit
	for rows.Next() {
		var id, mode, shard string
		if err := rows.Scan(&id, &mode, &shard); err != nil {
			return nil, fmt.Errorf("list migration units: %w", err)
		}
		if store.Mode(mode) == store.Pooled {
			pooled[shard] = true
			continue
		}
		tid, err := tenant.Parse(id)
		if err != nil {
			return nil, fmt.Errorf("catalog holds an invalid tenant id: %w", err)
		}
		tenants = append(tenants, migrate.Unit{Shard: shard, Mode: store.Mode(mode), Tenant: tid})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list migration units: %w", err)
	}
	out := make([]migrate.Unit, 0, len(pooled)+len(tenants))
	for s := range pooled {
		out = append(out, migrate.Unit{Shard: s, Mode: store.Pooled})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Shard < out[j].Shard })
	return append(out, tenants...), nil
}
