package catalog

import (
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// tenantEntry is the request-path view of a tenant.
type tenantEntry struct {
	found     bool
	state     State
	placement store.Placement
	tier      string
	limits    limits.Overrides
	created   time.Time // the start of the tenant's current incarnation
	eventData bool      // the current incarnation's events carry record data
}

// keyEntry is the request-path view of an API key.
type keyEntry struct {
	found    bool
	tenant   tenant.ID
	role     Role
	hash     [32]byte
	revoked  bool
	lastUsed time.Time
	created  time.Time
}

// cache holds request-path lookups. A loader reads the generation before it
// reads the database and stores its result only if no invalidation happened
// meanwhile, so a slow reader cannot put a stale entry back after a change.
type cache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex // guards everything below
	gen     uint64
	bypass  bool // while set nothing is served from or stored in the cache
	tenants map[tenant.ID]cached[tenantEntry]
	keys    map[string]cached[keyEntry]
}

type cached[T any] struct {
	v  T
	at time.Time
}

// maxCacheEntries bounds each map; past it the map is cleared (cheap, rare).
const maxCacheEntries = 100_000

func newCache(ttl time.Duration, now func() time.Time) *cache {
	return &cache{ttl: ttl, now: now, tenants: map[tenant.ID]cached[tenantEntry]{}, keys: map[string]cached[keyEntry]{}}
}

func (c *cache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *cache) tenant(id tenant.ID) (tenantEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.tenants[id]
	if !ok || c.bypass || c.now().Sub(e.at) > c.ttl {
		return tenantEntry{}, false
	}
	return e.v, true
}

func (c *cache) putTenant(gen uint64, id tenant.ID, e tenantEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.bypass {
		return
	}
	if len(c.tenants) >= maxCacheEntries {
		clear(c.tenants)
	}
	c.tenants[id] = cached[tenantEntry]{v: e, at: c.now()}
}

func (c *cache) key(id string) (keyEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.keys[id]
	if !ok || c.bypass || c.now().Sub(e.at) > c.ttl {
		return keyEntry{}, false
	}
	return e.v, true
}

func (c *cache) putKey(gen uint64, id string, e keyEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.bypass {
		return
	}
	if len(c.keys) >= maxCacheEntries {
		clear(c.keys)
	}
	c.keys[id] = cached[keyEntry]{v: e, at: c.now()}
}

// invalidateTenant drops the tenant and every key of it.
func (c *cache) invalidateTenant(id tenant.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.tenants, id)
	for k, e := range c.keys {
		if e.v.tenant == id {
			delete(c.keys, k)
		}
	}
}

// invalidateKey drops one key.
func (c *cache) invalidateKey(keyID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.keys, keyID)
}

// flush drops everything; with bypass set, the cache stays empty and
// unused until flush is called again with bypass false.
func (c *cache) flush(bypass bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.bypass = bypass
	clear(c.tenants)
	clear(c.keys)
}
