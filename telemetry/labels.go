package telemetry

import (
	"cmp"
	"container/heap"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// minSketch is the least number of counters of the heavy-hitter sketch.
const minSketch = 4096

// DefaultRerankInterval is how often the tenant labels are re-ranked by
// default.
const DefaultRerankInterval = time.Minute

// labels gives the busiest tenants their own label value: a heavy-hitter
// scheme. Until the budget is full a tenant gets its label at its first
// request. Meanwhile every request is counted in a Space-Saving sketch of
// max(16·max, 4096) counters (a tenant with more than 1/4096 of the
// requests since the last re-rank is always in it), halved at every
// re-rank so that it follows the recent load. Every re-rank gives a label
// to the sketch's busiest unlabelled tenants, ranked by the requests the
// sketch guarantees they made (its count less its error), when they have
// more than twice as many as the least busy labelled tenant, which loses
// its label: its
// series are deleted from every tracked vec. A tenant's labelled series
// count every request it makes while it holds the label.
type labels struct {
	max     int
	current atomic.Pointer[map[string]struct{}] // copy on write under mu
	next    atomic.Int64                        // unix nanoseconds of the next re-rank
	every   time.Duration
	now     func() time.Time

	mu      sync.Mutex
	sketch  sketch      // guarded by mu
	tracked []TenantVec // guarded by mu
}

// TenantVec is a metric vector with a "tenant" label whose series the
// label scheme deletes when a tenant loses its label (*prometheus.CounterVec,
// *prometheus.GaugeVec and *prometheus.HistogramVec are).
type TenantVec interface {
	prometheus.Collector
	DeletePartialMatch(labels prometheus.Labels) int
}

func newLabels(n int, every time.Duration, now func() time.Time) *labels {
	l := &labels{max: n, every: every, now: now, sketch: sketch{cap: max(16*n, minSketch), at: map[string]*ssEntry{}}}
	empty := map[string]struct{}{}
	l.current.Store(&empty)
	l.next.Store(now().Add(every).UnixNano())
	return l
}

func (l *labels) has(v string) bool {
	_, ok := (*l.current.Load())[v]
	return ok
}

// admit gives v a label if fewer than max hold one.
func (l *labels) admit(v string) bool {
	if len(*l.current.Load()) >= l.max {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := *l.current.Load()
	if _, ok := cur[v]; ok {
		return true
	}
	if len(cur) >= l.max {
		return false
	}
	l.publish(func(m map[string]struct{}) { m[v] = struct{}{} })
	return true
}

// count counts one request of v and re-ranks when it is time.
func (l *labels) count(v string) {
	l.mu.Lock()
	l.sketch.inc(v)
	l.mu.Unlock()
	if n := l.next.Load(); l.now().UnixNano() >= n && l.next.CompareAndSwap(n, l.now().Add(l.every).UnixNano()) {
		l.rerank()
	}
}

// publish copies the label set, changes the copy and stores it. Caller holds mu.
func (l *labels) publish(change func(map[string]struct{})) {
	cur := *l.current.Load()
	m := make(map[string]struct{}, len(cur)+1)
	for k := range cur {
		m[k] = struct{}{}
	}
	change(m)
	l.current.Store(&m)
}

// rerank moves labels to the busiest tenants (see labels), deletes the
// series of the tenants that lost theirs, and sweeps any series of an
// unlabelled tenant left by a request counted while it lost its label.
func (l *labels) rerank() {
	l.mu.Lock()
	defer l.mu.Unlock()
	entries := l.sketch.sorted()
	cur := *l.current.Load()
	countOf := make(map[string]uint64, len(entries))
	for _, e := range entries {
		countOf[e.key] = e.sure()
	}
	held := make([]string, 0, len(cur))
	for k := range cur {
		held = append(held, k)
	}
	// Weakest first.
	slices.SortFunc(held, func(a, b string) int { return cmp.Or(cmp.Compare(countOf[a], countOf[b]), cmp.Compare(a, b)) })
	var add, drop []string
	free := l.max - len(cur)
	for _, e := range entries {
		if _, ok := cur[e.key]; ok {
			continue
		}
		if e.sure() == 0 {
			break
		}
		if free > 0 {
			add = append(add, e.key)
			free--
			continue
		}
		if len(drop) < len(held) && e.sure() > 2*countOf[held[len(drop)]] {
			drop = append(drop, held[len(drop)])
			add = append(add, e.key)
			continue
		}
		break // sorted: no later entry is busier
	}
	if len(add) > 0 || len(drop) > 0 {
		l.publish(func(m map[string]struct{}) {
			for _, k := range drop {
				delete(m, k)
			}
			for _, k := range add {
				m[k] = struct{}{}
			}
		})
	}
	l.sketch.halve()
	l.sweep()
}

// forget takes v's label away and deletes its series.
func (l *labels) forget(v string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sketch.remove(v)
	if _, ok := (*l.current.Load())[v]; ok {
		l.publish(func(m map[string]struct{}) { delete(m, v) })
	}
	for _, vec := range l.tracked {
		vec.DeletePartialMatch(prometheus.Labels{"tenant": v})
	}
}

// sweep deletes every tracked series whose tenant label is neither held
// nor one of the fixed values. Caller holds mu.
func (l *labels) sweep() {
	cur := *l.current.Load()
	for _, vec := range l.tracked {
		ch := make(chan prometheus.Metric, 64)
		go func() { vec.Collect(ch); close(ch) }()
		stale := map[string]bool{}
		for m := range ch {
			var d dto.Metric
			if m.Write(&d) != nil {
				continue
			}
			for _, lp := range d.GetLabel() {
				if lp.GetName() != "tenant" {
					continue
				}
				v := lp.GetValue()
				if _, ok := cur[v]; !ok && v != NoTenant && v != OtherTenant {
					stale[v] = true
				}
			}
		}
		for v := range stale {
			vec.DeletePartialMatch(prometheus.Labels{"tenant": v})
		}
	}
}

// sketch is a Space-Saving heavy-hitter summary (Metwally et al.): at most
// cap counters; an uncounted key takes the smallest counter's place and
// count, plus one.
type sketch struct {
	cap  int
	at   map[string]*ssEntry
	heap ssHeap // min-heap by count
}

type ssEntry struct {
	key        string
	count, err uint64 // err: the count the key inherited when it came in
	index      int
}

// sure is how many times the key surely came.
func (e *ssEntry) sure() uint64 { return e.count - e.err }

func (s *sketch) inc(k string) {
	if e := s.at[k]; e != nil {
		e.count++
		heap.Fix(&s.heap, e.index)
		return
	}
	if len(s.heap) < s.cap {
		e := &ssEntry{key: k, count: 1}
		s.at[k] = e
		heap.Push(&s.heap, e)
		return
	}
	e := s.heap[0]
	delete(s.at, e.key)
	e.key, e.err = k, e.count
	e.count++
	s.at[k] = e
	heap.Fix(&s.heap, 0)
}

func (s *sketch) remove(k string) {
	if e := s.at[k]; e != nil {
		delete(s.at, k)
		heap.Remove(&s.heap, e.index)
	}
}

// sorted returns the entries by sure count, busiest first (ties by key).
func (s *sketch) sorted() []ssEntry {
	out := make([]ssEntry, 0, len(s.heap))
	for _, e := range s.heap {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b ssEntry) int { return cmp.Or(cmp.Compare(b.sure(), a.sure()), cmp.Compare(a.key, b.key)) })
	return out
}

// halve decays every count (the order of the heap is kept).
func (s *sketch) halve() {
	for _, e := range s.heap {
		e.count /= 2
		e.err /= 2
	}
}

type ssHeap []*ssEntry

func (h ssHeap) Len() int           { return len(h) }
func (h ssHeap) Less(i, j int) bool { return h[i].count < h[j].count }
func (h ssHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *ssHeap) Push(x any) {
	e := x.(*ssEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *ssHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
