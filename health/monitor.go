package health

import (
	"cmp"
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// DefaultMaxTenants is the default cap on tenants tracked.
const DefaultMaxTenants = 100_000

// DefaultIdleAfter is how long a tenant may go without a request before
// Tick forgets it: its whole history would be zeros.
const DefaultIdleAfter = HistoryMinutes * time.Minute

// Options configures New. The zero value is ready to use.
type Options struct {
	// MaxTenants caps the tenants tracked (default DefaultMaxTenants). The
	// monitor is split in up to 64 stripes by a hash of the id, each with
	// an equal share of the cap; a new tenant in a full stripe evicts that
	// stripe's least recently seen tenant.
	MaxTenants int
	// IdleAfter is how long a tenant may be idle before Tick forgets it
	// (default DefaultIdleAfter).
	IdleAfter time.Duration
	// Baseline configures the anomaly flags.
	Baseline Baseline
	// Now is the clock (time.Now if nil). Run waits with the time
	// package's timers, so under testing/synctest leave Now nil.
	Now func() time.Time
	// Logger receives "tenant anomaly raised" and "tenant anomaly cleared"
	// events (nil: none).
	Logger *slog.Logger
	// Registerer, when set, gets the anomaly metrics (see NewCollector).
	Registerer prometheus.Registerer
	// MaxFlagLabels bounds the tenants named by bulkhead_tenant_anomaly
	// (default DefaultMaxFlagLabels).
	MaxFlagLabels int
}

// Monitor keeps sliding windows, a history and anomaly flags for every
// active tenant, in bounded memory. It is safe for concurrent use.
//
// Each tracked tenant costs a fixed StateBytes (about 3 KiB: a 10 s
// bucket ring for the last minute with a latency histogram each, a
// one-minute ring for the hour with histograms for the last 15 minutes,
// three baselines) plus its map entry, so the default cap of 100,000
// tenants bounds the monitor at about 310 MB; TestMemoryPerTenant checks
// the figure.
type Monitor struct {
	opts    Options
	base    Baseline
	seed    maphash.Seed
	stripes []stripe
	perCap  int
}

type stripe struct {
	mu         sync.Mutex
	tenants    map[tenant.ID]*state // guarded by mu
	head, tail *state               // LRU, guarded by mu
	_          [40]byte             // keep stripes on their own cache lines
}

// New returns a Monitor. It fails only if the anomaly metrics cannot be
// registered on Options.Registerer.
func New(opts Options) (*Monitor, error) {
	if opts.MaxTenants <= 0 {
		opts.MaxTenants = DefaultMaxTenants
	}
	if opts.IdleAfter <= 0 {
		opts.IdleAfter = DefaultIdleAfter
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxFlagLabels <= 0 {
		opts.MaxFlagLabels = DefaultMaxFlagLabels
	}
	n := 1
	for n < 64 && n*2*16 <= opts.MaxTenants {
		n *= 2
	}
	m := &Monitor{opts: opts, base: opts.Baseline.withDefaults(), seed: maphash.MakeSeed(),
		stripes: make([]stripe, n), perCap: max(1, opts.MaxTenants/n)}
	for i := range m.stripes {
		m.stripes[i].tenants = make(map[tenant.ID]*state)
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(NewCollector(m)); err != nil {
			return nil, errors.Join(errors.New("health: register the anomaly metrics"), err)
		}
	}
	return m, nil
}

func (m *Monitor) stripe(id tenant.ID) *stripe {
	h := maphash.String(m.seed, id.String())
	return &m.stripes[h&uint64(len(m.stripes)-1)]
}

// Observe counts one request. It is cheap (a stripe lock, no allocation
// for a tenant already tracked) and safe for concurrent use. A sample
// without a tenant is ignored.
func (m *Monitor) Observe(s Sample) {
	if s.Tenant.IsZero() {
		return
	}
	ns := m.opts.Now().UnixNano()
	st := m.stripe(s.Tenant)
	st.mu.Lock()
	t := st.tenants[s.Tenant]
	if t == nil {
		t = st.add(s.Tenant, ns, m.perCap)
	} else {
		st.touch(t)
	}
	t.record(&s, ns)
	st.mu.Unlock()
}

// add tracks a new tenant, evicting the least recently seen one if the
// stripe is full (its memory is reused). Caller holds mu.
func (st *stripe) add(id tenant.ID, ns int64, max int) *state {
	var t *state
	if len(st.tenants) >= max && st.tail != nil {
		t = st.tail
		st.remove(t)
	} else {
		t = new(state)
	}
	t.reset(id, ns)
	st.tenants[id] = t
	st.pushFront(t)
	return t
}

func (st *stripe) remove(t *state) {
	delete(st.tenants, t.id)
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		st.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		st.tail = t.prev
	}
	t.prev, t.next = nil, nil
}

func (st *stripe) pushFront(t *state) {
	t.prev, t.next = nil, st.head
	if st.head != nil {
		st.head.prev = t
	}
	st.head = t
	if st.tail == nil {
		st.tail = t
	}
}

func (st *stripe) touch(t *state) {
	if st.head == t {
		return
	}
	st.remove(t)
	st.tenants[t.id] = t
	st.pushFront(t)
}

// Tenant returns everything the monitor holds on id; false if it is not
// active (never seen, forgotten, or evicted).
func (m *Monitor) Tenant(id tenant.ID) (Report, bool) {
	ns := m.opts.Now().UnixNano()
	st := m.stripe(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	t := st.tenants[id]
	if t == nil {
		return Report{}, false
	}
	t.roll(bucketOf(ns))
	r := Report{Summary: t.summary(ns)}
	for _, span := range Windows {
		r.Windows = append(r.Windows, t.window(span, ns))
	}
	r.Series = t.series(ns)
	return r, true
}

// Zero is the report of an active tenant the monitor holds nothing on
// (no request yet, or evicted): zero windows and an empty history ending
// at now. Servers answer it for a tenant that exists but is idle.
func Zero(id tenant.ID, now time.Time) Report {
	var t state
	ns := now.UnixNano()
	t.reset(id, ns)
	r := Report{Summary: t.summary(ns)}
	r.Last = time.Time{}
	for _, span := range Windows {
		r.Windows = append(r.Windows, t.window(span, ns))
	}
	r.Series = t.series(ns)
	return r
}

func (t *state) summary(ns int64) Summary {
	s := Summary{Tenant: t.id, Window: t.window(time.Minute, ns), Flags: []Flag{}, Last: time.Unix(0, t.last).UTC()}
	for i := range t.det {
		if t.det[i].raised {
			s.Flags = append(s.Flags, t.det[i].flag(i))
		}
	}
	return s
}

// Fleet returns the summary of every active tenant, sorted by tenant id.
func (m *Monitor) Fleet() []Summary {
	ns := m.opts.Now().UnixNano()
	var out []Summary
	m.each(ns, func(t *state) { out = append(out, t.summary(ns)) })
	slices.SortFunc(out, func(a, b Summary) int { return cmp.Compare(a.Tenant.String(), b.Tenant.String()) })
	return out
}

// Top returns the n active tenants highest by the order over the last
// minute (ties by tenant id), highest first. An unknown order ranks by
// requests.
func (m *Monitor) Top(by Order, n int) []Summary {
	if n <= 0 {
		return nil
	}
	all := m.Fleet()
	key := func(s *Summary) float64 {
		switch by {
		case ByErrors:
			return float64(s.Window.Errors)
		case ByLatency:
			return float64(s.Window.P99)
		}
		return float64(s.Window.Requests)
	}
	slices.SortStableFunc(all, func(a, b Summary) int { return cmp.Compare(key(&b), key(&a)) })
	return all[:min(n, len(all))]
}

// Forget drops id (a deleted or offboarded tenant): a tenant created
// again with the same id starts from zero.
func (m *Monitor) Forget(id tenant.ID) {
	st := m.stripe(id)
	st.mu.Lock()
	if t := st.tenants[id]; t != nil {
		st.remove(t)
	}
	st.mu.Unlock()
}

// Len returns how many tenants the monitor tracks.
func (m *Monitor) Len() int {
	n := 0
	for i := range m.stripes {
		st := &m.stripes[i]
		st.mu.Lock()
		n += len(st.tenants)
		st.mu.Unlock()
	}
	return n
}

// each calls f for every tracked tenant, rolled to ns, under its stripe's lock.
func (m *Monitor) each(ns int64, f func(t *state)) {
	b := bucketOf(ns)
	for i := range m.stripes {
		st := &m.stripes[i]
		st.mu.Lock()
		for _, t := range st.tenants {
			t.roll(b)
			f(t)
		}
		st.mu.Unlock()
	}
}

// flagEvent is a flag raised or cleared, logged once the lock is let go.
type flagEvent struct {
	id   tenant.ID
	sig  int
	c    change
	flag Flag
}

// Tick closes the buckets that ended by now: it judges each tenant's
// signals on them (baselines, flags, log events) and forgets tenants idle
// longer than Options.IdleAfter. Run calls it at every bucket boundary; a
// team driving the monitor from its own loop calls it instead of Run.
func (m *Monitor) Tick() {
	ns := m.opts.Now().UnixNano()
	cur := bucketOf(ns)
	idle := ns - int64(m.opts.IdleAfter)
	var events []flagEvent
	for i := range m.stripes {
		st := &m.stripes[i]
		st.mu.Lock()
		for id, t := range st.tenants {
			if t.last < idle {
				st.remove(t)
				continue
			}
			t.roll(cur)
			for b := max(t.evaluated+1, cur-int64(fineSlots)+1); b < cur; b++ {
				t.judgeBucket(b, &m.base, func(sig int, c change) {
					ev := flagEvent{id: id, sig: sig, c: c}
					d := &t.det[sig]
					ev.flag = Flag{Signal: Signals[sig], Value: d.value, Baseline: d.mean, Spread: d.dev}
					if c == raised {
						ev.flag = d.flag(sig)
					}
					events = append(events, ev)
				})
			}
			t.evaluated = max(t.evaluated, cur-1)
		}
		st.mu.Unlock()
	}
	if m.opts.Logger == nil {
		return
	}
	for _, ev := range events {
		msg, level := "tenant anomaly raised", slog.LevelWarn
		if ev.c == cleared {
			msg, level = "tenant anomaly cleared", slog.LevelInfo
		}
		m.opts.Logger.LogAttrs(context.Background(), level, msg,
			slog.String("tenant", ev.id.String()),
			slog.String("signal", string(ev.flag.Signal)),
			slog.Float64("value", ev.flag.Value),
			slog.Float64("baseline", ev.flag.Baseline),
			slog.Float64("spread", ev.flag.Spread))
	}
}

// Run calls Tick at every bucket boundary until ctx ends, then returns
// nil.
func (m *Monitor) Run(ctx context.Context) error {
	for {
		ns := m.opts.Now().UnixNano()
		next := (bucketOf(ns) + 1) * int64(Bucket)
		t := time.NewTimer(time.Duration(next - ns))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		m.Tick()
	}
}
