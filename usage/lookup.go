package usage

import (
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Usage returns the tenant's last known storage usage, and false when the
// tracker holds none for it (never observed, removed, or swept out).
func (t *Tracker) Usage(id tenant.ID) (store.Usage, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[id]
	return e.usage, ok
}
