package usage

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// MaxTracked is the default bound of the tenants a Tracker keeps in
// memory. Past it the smallest tenant gives way to a bigger one, so the
// top tenants stay exact and only the sum of the others misses the
// smallest.
const MaxTracked = 100_000

// Mark orders the observations of a Tracker: Begin returns one before a
// read or a write of a tenant's usage starts, and Observe compares it
// with the tenant's removal.
type Mark uint64

// TenantUsage is a tenant and its last known usage.
type TenantUsage struct {
	ID    tenant.ID
	Usage store.Usage
}

// before reports whether a ranks above b: more bytes, then more records,
// then the smaller id, so that the ranking is total and stable from one
// scrape to the next.
func (a TenantUsage) before(b TenantUsage) bool {
	if a.Usage.Bytes != b.Usage.Bytes {
		return a.Usage.Bytes > b.Usage.Bytes
	}
	if a.Usage.Records != b.Usage.Records {
		return a.Usage.Records > b.Usage.Records
	}
	return a.ID.String() < b.ID.String()
}

// entry is a tenant's last known storage usage. stamp orders the
// observations (see Tracker.gen).
type entry struct {
	usage store.Usage
	stamp uint64
}

// Tracker is an in-memory, bounded map from tenant to its last known
// storage usage. It is safe for concurrent use.
type Tracker struct {
	mu  sync.Mutex
	max int
	// gen numbers the observations: each Observe or Touch stamps its
	// entry with the next value. A sweep notes the next stamp when it
	// starts and, once it has walked every tenant, drops the entries
	// stamped before it: tenants no longer listed. Entries that requests
	// observed meanwhile carry later stamps and stay. It only grows under
	// mu, but Begin reads it without mu: every write calls Begin, and must
	// not queue on the tracker's lock for it.
	gen     atomic.Uint64
	entries map[tenant.ID]entry // guarded by mu
	// removed holds the stamp at which each tenant was last removed
	// (offboarded), so that a read of its usage that began before the
	// removal and ends after it cannot bring it back (Observe). A complete
	// sweep drops the tombstones older than the sweep before it: no read
	// outlives a sweep. At most max are kept. Guarded by mu.
	removed   map[tenant.ID]uint64
	lastStart uint64 // Begin of the last complete sweep; guarded by mu
	// The last complete sweep: when it ended and how long it took.
	// Guarded by mu.
	sweptAt  time.Time
	sweepDur time.Duration
}

// NewTracker returns an empty Tracker that keeps at most max tenants
// (MaxTracked if max <= 0).
func NewTracker(max int) *Tracker {
	if max <= 0 {
		max = MaxTracked
	}
	return &Tracker{max: max, entries: make(map[tenant.ID]entry), removed: make(map[tenant.ID]uint64)}
}

// Begin returns the Mark to give Observe for a read or write of usage
// starting now.
func (t *Tracker) Begin() Mark {
	return Mark(t.gen.Load() + 1)
}

// Observe records u as tenant id's usage, read or left by an operation
// that began when Begin returned since. An operation that began before
// the tenant was removed is ignored, so it cannot bring back a tenant
// offboarded meanwhile. When the tracker is full, a new tenant takes the
// place of the smallest one only if it is bigger.
func (t *Tracker) Observe(id tenant.ID, u store.Usage, since Mark) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at, ok := t.removed[id]; ok && at >= uint64(since) {
		return
	}
	if _, ok := t.entries[id]; !ok && len(t.entries) >= t.max {
		min, found := TenantUsage{}, false
		for mid, e := range t.entries {
			r := TenantUsage{ID: mid, Usage: e.usage}
			if !found || min.before(r) {
				min, found = r, true
			}
		}
		if !found || !(TenantUsage{ID: id, Usage: u}).before(min) {
			return
		}
		delete(t.entries, min.ID)
	}
	t.entries[id] = entry{usage: u, stamp: t.gen.Add(1)}
}

// Touch keeps the tenant's last known usage through the current sweep,
// for a tenant that exists but whose usage could not be read just now.
func (t *Tracker) Touch(id tenant.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[id]; ok {
		e.stamp = t.gen.Add(1)
		t.entries[id] = e
	}
}

// Remove forgets the tenant (offboarded, or not serving), at once rather
// than at the next sweep, and keeps a tombstone so that reads already
// under way do not bring it back.
func (t *Tracker) Remove(id tenant.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, id)
	if len(t.removed) >= t.max {
		clear(t.removed) // degrade to forgetting tombstones rather than grow
	}
	t.removed[id] = t.gen.Add(1)
}

// prune drops the entries neither observed nor touched since Begin
// returned start, and notes the sweep's end and duration.
func (t *Tracker) prune(start Mark, end time.Time, took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, e := range t.entries {
		if e.stamp < uint64(start) {
			delete(t.entries, id)
		}
	}
	for id, at := range t.removed {
		if at < t.lastStart {
			delete(t.removed, id)
		}
	}
	t.lastStart = uint64(start)
	t.sweptAt, t.sweepDur = end, took
}

// Snapshot is the tracker's content as a Collector publishes it.
type Snapshot struct {
	// Top are the biggest tenants, biggest first (more bytes, then more
	// records, then the smaller id).
	Top []TenantUsage
	// Other is the sum of every other tracked tenant.
	Other store.Usage
	// Tracked is how many tenants the tracker holds.
	Tracked int
	// SweptAt is when the last complete sweep ended (zero: none yet), and
	// SweepDuration how long it took.
	SweptAt       time.Time
	SweepDuration time.Duration
}

// Snapshot returns the n biggest tenants and the sum of the rest. It
// keeps a sorted slice of at most n entries instead of sorting every
// tenant, so it costs O(tenants × n) at worst and allocates O(n).
func (t *Tracker) Snapshot(n int) Snapshot {
	n = max(n, 0)
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Snapshot{Top: make([]TenantUsage, 0, n+1), Tracked: len(t.entries),
		SweptAt: t.sweptAt, SweepDuration: t.sweepDur}
	var total store.Usage
	for id, e := range t.entries {
		total.Records += e.usage.Records
		total.Bytes += e.usage.Bytes
		r := TenantUsage{ID: id, Usage: e.usage}
		if len(s.Top) == n && (n == 0 || !r.before(s.Top[n-1])) {
			continue
		}
		i := sort.Search(len(s.Top), func(i int) bool { return r.before(s.Top[i]) })
		s.Top = append(s.Top, TenantUsage{})
		copy(s.Top[i+1:], s.Top[i:])
		s.Top[i] = r
		if len(s.Top) > n {
			s.Top = s.Top[:n]
		}
	}
	s.Other = total
	for _, r := range s.Top {
		s.Other.Records -= r.Usage.Records
		s.Other.Bytes -= r.Usage.Bytes
	}
	return s
}
