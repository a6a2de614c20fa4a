package catalog

import (
	"context"
	"fmt"
	"sort"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

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
