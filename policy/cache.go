package policy

import (
	"sync"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// maxCached bounds each entity cache; a full cache is emptied and refilled.
const maxCached = 4096

// cache memoises immutable Cedar values (records and entities are never
// modified after they are built), bounded by maxCached entries.
type cache[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V // guarded by mu
}

func (c *cache[K, V]) get(k K, build func() V) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = build()
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCached {
		c.m = make(map[K]V)
	}
	c.m[k] = v
	c.mu.Unlock()
	return v
}

type attrKey struct {
	kind, role string
	tenant     tenant.ID
}

type collKey struct {
	tenant     tenant.ID
	collection string
}

// entityCache holds the parts of per-request entities that repeat across
// requests: principal attributes (they do not depend on the principal's
// id), tenant and collection resources.
type entityCache struct {
	attrs       cache[attrKey, types.Record]
	tenants     cache[tenant.ID, types.Entity]
	collections cache[collKey, types.Entity]
}

func (c *entityCache) principalAttrs(p Principal) types.Record {
	return c.attrs.get(attrKey{p.Kind, p.Role, p.Tenant}, func() types.Record {
		m := types.RecordMap{"kind": types.String(p.Kind), "role": types.String(p.Role)}
		if !p.Tenant.IsZero() {
			m["tenant"] = tenantUID(p.Tenant)
		}
		return types.NewRecord(m)
	})
}

func (c *entityCache) tenant(id tenant.ID) types.Entity {
	return c.tenants.get(id, func() types.Entity {
		uid := tenantUID(id)
		return types.Entity{UID: uid, Attributes: types.NewRecord(types.RecordMap{"tenant": uid})}
	})
}

func (c *entityCache) collection(id tenant.ID, name string) types.Entity {
	return c.collections.get(collKey{id, name}, func() types.Entity {
		tuid := tenantUID(id)
		return types.Entity{
			UID:        cedar.NewEntityUID(typeCollection, types.String(id.String()+"/"+name)),
			Parents:    cedar.NewEntityUIDSet(tuid),
			Attributes: types.NewRecord(types.RecordMap{"tenant": tuid, "name": types.String(name)}),
		}
	})
}
