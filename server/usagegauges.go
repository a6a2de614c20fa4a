package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Storage usage gauges. Reading every tenant's usage at scrape time would
// make a scrape cost one store transaction per tenant, and one label value
// per tenant would make the series unbounded; so the server keeps the last
// known usage of each tenant in memory (usageTracker), fed by a paced
// background sweep and by the requests that read usage anyway, and the
// collector publishes only the biggest tenants by name, folding the rest
// into telemetry.OtherTenant.

// Defaults for the usage gauges' Options.
const (
	// DefaultUsageTopTenants is how many tenants get their own label value
	// on the usage gauges.
	DefaultUsageTopTenants = 20
	// DefaultUsageSweepInterval is the pause between two usage sweeps.
	DefaultUsageSweepInterval = 60 * time.Second
	// UsageSweepRate bounds the tenants a sweep reads per second, so that
	// a sweep over many tenants is a trickle next to the request load
	// rather than a burst of transactions.
	UsageSweepRate = 100
	// MaxUsageTracked bounds the tenants the tracker keeps in memory.
	// Past it the smallest tenant gives way to a bigger one, so the top
	// tenants stay exact and only the _other sum misses the smallest.
	MaxUsageTracked = 100_000
)

const (
	// usageSweepPage is how many tenants a sweep lists from the catalog
	// at once.
	usageSweepPage = 100
	// usageReadTimeout bounds one tenant's usage read in a sweep, so that
	// one stuck placement cannot stall the sweep of all the others.
	usageReadTimeout = 10 * time.Second
)

// usageEntry is a tenant's last known storage usage. stamp orders the
// observations (see usageTracker.gen).
type usageEntry struct {
	usage store.Usage
	stamp uint64
}

// tenantUsageRank is a tenant and its usage, as the collector ranks them.
type tenantUsageRank struct {
	id    tenant.ID
	usage store.Usage
}

// before reports whether a ranks above b: more bytes, then more records,
// then the smaller id, so that the ranking is total and stable from one
// scrape to the next.
func (a tenantUsageRank) before(b tenantUsageRank) bool {
	if a.usage.Bytes != b.usage.Bytes {
		return a.usage.Bytes > b.usage.Bytes
	}
	if a.usage.Records != b.usage.Records {
		return a.usage.Records > b.usage.Records
	}
	return a.id.String() < b.id.String()
}

// usageTracker is an in-memory, bounded map from tenant to its last known
// storage usage. It is safe for concurrent use.
type usageTracker struct {
	mu  sync.Mutex
	max int
	// gen numbers the observations: each observe or touch stamps its
	// entry with the next value. A sweep notes the next stamp when it
	// starts and, once it has walked every tenant, drops the entries
	// stamped before it: tenants no longer in the catalog. Entries that
	// requests observed meanwhile carry later stamps and stay. It only
	// grows under mu, but begin reads it without mu: every write request
	// calls begin, and must not queue on the tracker's lock for it.
	gen     atomic.Uint64
	entries map[tenant.ID]usageEntry
	// removed holds the stamp at which each tenant was last removed
	// (offboarded), so that a read of its usage that began before the
	// removal and ends after it cannot bring it back (observeSince). A
	// complete sweep drops the tombstones older than the sweep before it:
	// no read outlives a sweep. At most max are kept.
	removed   map[tenant.ID]uint64
	lastStart uint64 // begin() of the last complete sweep
	// The last complete sweep: when it ended and how long it took.
	sweptAt  time.Time
	sweepDur time.Duration
}

func newUsageTracker(max int) *usageTracker {
	if max <= 0 {
		max = MaxUsageTracked
	}
	return &usageTracker{max: max, entries: make(map[tenant.ID]usageEntry), removed: make(map[tenant.ID]uint64)}
}

// observe records u as the tenant's usage, read just now.
func (t *usageTracker) observe(id tenant.ID, u store.Usage) {
	t.observeSince(id, u, t.begin())
}

// observeSince records u as the tenant's usage, read by a read that began
// when begin returned mark. A read that began before the tenant was
// removed is ignored. When the tracker is full, a new tenant takes the
// place of the smallest one only if it is bigger.
func (t *usageTracker) observeSince(id tenant.ID, u store.Usage, mark uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at, ok := t.removed[id]; ok && at >= mark {
		return
	}
	if _, ok := t.entries[id]; !ok && len(t.entries) >= t.max {
		min, found := tenantUsageRank{}, false
		for mid, e := range t.entries {
			r := tenantUsageRank{id: mid, usage: e.usage}
			if !found || min.before(r) {
				min, found = r, true
			}
		}
		if !found || !(tenantUsageRank{id: id, usage: u}).before(min) {
			return
		}
		delete(t.entries, min.id)
	}
	t.entries[id] = usageEntry{usage: u, stamp: t.gen.Add(1)}
}

// touch keeps the tenant's last known usage through the current sweep,
// for a tenant that exists but whose usage could not be read just now.
func (t *usageTracker) touch(id tenant.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.entries[id]; ok {
		e.stamp = t.gen.Add(1)
		t.entries[id] = e
	}
}

// remove forgets the tenant (offboarded or not serving), and keeps a
// tombstone so that reads already under way do not bring it back.
func (t *usageTracker) remove(id tenant.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, id)
	if len(t.removed) >= t.max {
		clear(t.removed) // degrade to the old behaviour rather than grow
	}
	t.removed[id] = t.gen.Add(1)
}

// begin returns the stamp a sweep starting now compares against in
// prune: every observation from here on has at least this stamp.
func (t *usageTracker) begin() uint64 {
	return t.gen.Load() + 1
}

// prune drops the entries neither observed nor touched since begin
// returned start, and notes the sweep's end and duration.
func (t *usageTracker) prune(start uint64, end time.Time, took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, e := range t.entries {
		if e.stamp < start {
			delete(t.entries, id)
		}
	}
	for id, at := range t.removed {
		if at < t.lastStart {
			delete(t.removed, id)
		}
	}
	t.lastStart = start
	t.sweptAt, t.sweepDur = end, took
}

// usageSnapshot is what one scrape publishes.
type usageSnapshot struct {
	top      []tenantUsageRank // biggest first, at most n
	other    store.Usage       // the sum of every other tracked tenant
	tracked  int
	sweptAt  time.Time
	sweepDur time.Duration
}

// snapshot returns the n biggest tenants and the sum of the rest. It
// keeps a sorted slice of at most n entries instead of sorting the whole
// map, so a scrape costs O(tenants × n) at worst and allocates O(n).
func (t *usageTracker) snapshot(n int) usageSnapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := usageSnapshot{top: make([]tenantUsageRank, 0, n+1), tracked: len(t.entries),
		sweptAt: t.sweptAt, sweepDur: t.sweepDur}
	var total store.Usage
	for id, e := range t.entries {
		total.Records += e.usage.Records
		total.Bytes += e.usage.Bytes
		r := tenantUsageRank{id: id, usage: e.usage}
		if len(s.top) == n && (n == 0 || !r.before(s.top[n-1])) {
			continue
		}
		i := sort.Search(len(s.top), func(i int) bool { return r.before(s.top[i]) })
		s.top = append(s.top, tenantUsageRank{})
		copy(s.top[i+1:], s.top[i:])
		s.top[i] = r
		if len(s.top) > n {
			s.top = s.top[:n]
		}
	}
	s.other = total
	for _, r := range s.top {
		s.other.Records -= r.usage.Records
		s.other.Bytes -= r.usage.Bytes
	}
	return s
}

// usageCollector publishes the tracker at scrape time: one series per top
// tenant and one for telemetry.OtherTenant, so at most n+1 label values
// whatever the number of tenants.
type usageCollector struct {
	t        *usageTracker
	n        int
	records  *prometheus.Desc
	bytes    *prometheus.Desc
	tracked  *prometheus.Desc
	sweptAt  *prometheus.Desc
	sweepDur *prometheus.Desc
}

func newUsageCollector(t *usageTracker, n int) *usageCollector {
	return &usageCollector{
		t: t,
		n: n,
		records: prometheus.NewDesc("bulkhead_tenant_usage_records",
			fmt.Sprintf("Records stored, as last seen, for the %d biggest tenants by bytes; tenant=\"_other\" sums the other tracked tenants.", n),
			[]string{"tenant"}, nil),
		bytes: prometheus.NewDesc("bulkhead_tenant_usage_bytes",
			fmt.Sprintf("Bytes of record data stored (as the quota counts them), as last seen, for the %d biggest tenants; tenant=\"_other\" sums the other tracked tenants.", n),
			[]string{"tenant"}, nil),
		tracked: prometheus.NewDesc("bulkhead_tenant_usage_tracked",
			"Tenants whose storage usage the server tracks for the usage gauges.", nil, nil),
		sweptAt: prometheus.NewDesc("bulkhead_tenant_usage_last_sweep_timestamp_seconds",
			"When the last complete usage sweep over all tenants ended (Unix time).", nil, nil),
		sweepDur: prometheus.NewDesc("bulkhead_tenant_usage_sweep_seconds",
			"How long the last complete usage sweep over all tenants took.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.records
	ch <- c.bytes
	ch <- c.tracked
	ch <- c.sweptAt
	ch <- c.sweepDur
}

// Collect implements prometheus.Collector.
func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.t.snapshot(c.n)
	emit := func(label string, u store.Usage) {
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(u.Records), label)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(u.Bytes), label)
	}
	for _, r := range s.top {
		emit(r.id.String(), r.usage)
	}
	emit(telemetry.OtherTenant, s.other)
	ch <- prometheus.MustNewConstMetric(c.tracked, prometheus.GaugeValue, float64(s.tracked))
	if !s.sweptAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.sweptAt, prometheus.GaugeValue, float64(s.sweptAt.UnixNano())/1e9)
		ch <- prometheus.MustNewConstMetric(c.sweepDur, prometheus.GaugeValue, s.sweepDur.Seconds())
	}
}

// usageSweeper is the background goroutine of the usage gauges; Close
// (and Serve's shutdown) stop it and wait for it.
type usageSweeper struct {
	stop context.CancelFunc
	done chan struct{}
}

// initUsageGauges creates the tracker, registers the collector on the
// server's private registry and starts the sweeper unless
// Options.UsageSweepInterval is negative.
func (s *Server) initUsageGauges() {
	if s.opts.UsageTopTenants <= 0 {
		s.opts.UsageTopTenants = DefaultUsageTopTenants
	}
	if s.opts.UsageSweepInterval == 0 {
		s.opts.UsageSweepInterval = DefaultUsageSweepInterval
	}
	s.tracked = newUsageTracker(MaxUsageTracked)
	s.metrics.Registry().MustRegister(newUsageCollector(s.tracked, s.opts.UsageTopTenants))
	if s.opts.UsageSweepInterval < 0 {
		return
	}
	// The sweeper outlives Open's ctx, which only bounds opening.
	ctx, cancel := context.WithCancel(context.Background())
	s.sweeper = &usageSweeper{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.sweeper.done)
		s.sweepLoop(ctx, s.opts.UsageSweepInterval)
	}()
}

// stopUsageSweeper stops the sweeper and waits for it to return. It is
// safe to call more than once and from several goroutines.
func (s *Server) stopUsageSweeper() {
	if s.sweeper == nil {
		return
	}
	s.sweeper.stop()
	<-s.sweeper.done
}

// sweepLoop sweeps at once (so the gauges fill soon after a start), then
// every interval after the end of the previous sweep, until ctx is done.
func (s *Server) sweepLoop(ctx context.Context, interval time.Duration) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if err := s.sweepUsage(ctx, time.Second/UsageSweepRate); err != nil && ctx.Err() == nil {
			s.log.Warn("usage sweep failed; the usage gauges keep their last values", slog.String("error", err.Error()))
		}
		timer.Reset(interval)
	}
}

// sweepUsage walks every tenant of the catalog, a page at a time, and
// reads each serving tenant's usage, at most one tenant per pace (none if
// pace is 0). Each read runs in a context that names that tenant alone,
// through the router like any request, so a tenant's numbers can only
// come from its own placement. Once the walk is complete it drops the
// tenants it did not see. Sweeps do not overlap.
func (s *Server) sweepUsage(ctx context.Context, pace time.Duration) error {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	began := time.Now()
	start := s.tracked.begin()
	var tick <-chan time.Time
	if pace > 0 {
		ticker := time.NewTicker(pace)
		defer ticker.Stop()
		tick = ticker.C
	}
	var failed int
	var firstErr error
	after := ""
	for {
		page, err := s.catalog.ListTenants(ctx, after, usageSweepPage)
		if err != nil {
			return fmt.Errorf("list tenants: %w", err)
		}
		for _, t := range page {
			if t.State != catalog.Active && t.State != catalog.Suspended {
				// Provisioning or being deleted: nothing to show.
				s.tracked.remove(t.ID)
				continue
			}
			if tick != nil {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-tick:
				}
			}
			mark := s.tracked.begin()
			rctx, cancel := context.WithTimeout(tenant.WithID(ctx, t.ID), usageReadTimeout)
			u, err := s.storageUsage(rctx)
			cancel()
			switch {
			case err == nil:
				s.tracked.observeSince(t.ID, u, mark)
			case errors.Is(err, store.ErrUnknownTenant):
				s.tracked.remove(t.ID) // offboarded since the page was listed
			case ctx.Err() != nil:
				return ctx.Err()
			default:
				s.tracked.touch(t.ID)
				if failed++; firstErr == nil {
					firstErr = fmt.Errorf("tenant %s: %w", t.ID, err)
				}
			}
		}
		if len(page) < usageSweepPage {
			break
		}
		after = page[len(page)-1].ID.String()
	}
	took := time.Since(began)
	s.tracked.prune(start, time.Now(), took)
	if failed > 0 {
		s.log.Warn("usage sweep could not read some tenants; their last known usage is kept",
			slog.Int("failed", failed), slog.String("first_error", firstErr.Error()))
	}
	s.log.Debug("usage sweep done", slog.Duration("took", took))
	return nil
}

// storageUsage reads the records and bytes of the tenant in ctx. Where the
// backend keeps a usage row (the quota's), that row alone is read: a
// sweep then costs one small read per tenant, not a count of its
// collections as tenantUsage does. Elsewhere the records are counted and
// the bytes are 0, as GET /v1/usage shows them.
func (s *Server) storageUsage(ctx context.Context) (store.Usage, error) {
	var u store.Usage
	err := s.router.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		u, err = tx.Usage(ctx)
		if !errors.Is(err, store.ErrUsageUnsupported) {
			return err
		}
		cs, err := tx.Collections(ctx)
		if err != nil {
			return err
		}
		u = store.Usage{}
		for _, c := range cs {
			u.Records += c.Records
		}
		return nil
	})
	return u, err
}

// writeTx runs fn in a write transaction of the tenant in ctx, like
// router.Tx, and once it has committed gives the tenant's usage gauges the
// usage its writes left, which the store knows without another query.
func (s *Server) writeTx(ctx context.Context, fn func(tx *store.Tx) error) error {
	var after store.Usage
	var known bool
	mark := s.tracked.begin()
	err := s.router.Tx(ctx, func(tx *store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		after, known = tx.UsageAfterWrites()
		return nil
	})
	if err == nil && known {
		s.noteUsage(ctx, mark, Usage{Records: after.Records, Bytes: after.Bytes})
	}
	return err
}

// noteUsage feeds the tracker with usage a request has just read or
// written for the tenant in ctx, at no extra cost.
// mark is s.tracked.begin() from before the read or write began.
func (s *Server) noteUsage(ctx context.Context, mark uint64, u Usage) {
	if s.tracked == nil {
		return
	}
	if id, err := tenant.FromContext(ctx); err == nil {
		s.tracked.observeSince(id, store.Usage{Records: u.Records, Bytes: u.Bytes}, mark)
	}
}
