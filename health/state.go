package health

import (
	"time"
	"unsafe"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// The fixed layout of a tenant's figures.
const (
	// Bucket is the step of the monitor: requests are counted in 10 s
	// buckets, the 1m window slides by a bucket, and baselines and flags
	// are judged once per closed bucket.
	Bucket = 10 * time.Second
	// HistoryMinutes is how many one-minute points Report.Series holds.
	HistoryMinutes = 60

	fineSlots     = int(time.Minute / Bucket) // the 1m window's buckets
	windowMinutes = 15                        // the longest window, in minutes
)

// Windows are the spans of Report.Windows.
var Windows = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute}

type counts struct{ req, err, thr, que uint32 }

func (c *counts) add(s *Sample) {
	c.req++
	if s.Status >= 500 {
		c.err++
	}
	if s.Throttled {
		c.thr++
	}
	if s.Queued {
		c.que++
	}
}

// state is one tenant's figures. It holds no pointer but the LRU links and
// the id, so the garbage collector has little to scan. Guarded by its
// stripe's mutex.
type state struct {
	id         tenant.ID
	prev, next *state // the stripe's LRU list, most recently seen first

	first, last int64 // unix nanoseconds of the first and the latest sample
	bucket      int64 // the newest bucket number the rings hold
	evaluated   int64 // the last bucket judged for flags

	fine  [fineSlots]counts // by bucket number mod fineSlots
	fineH [fineSlots]hist
	mins  [HistoryMinutes]counts // by minute number mod HistoryMinutes
	minP  [HistoryMinutes]uint8  // a closed minute's p99 bin + 1 (0: none)
	minH  [windowMinutes]hist    // by minute number mod windowMinutes

	det [3]detector // by signal index (Signals)
}

func bucketOf(ns int64) int64 { return ns / int64(Bucket) }

func minuteOf(bucket int64) int64 { return bucket / int64(fineSlots) }

func mod(a int64, n int) int { return int(((a % int64(n)) + int64(n)) % int64(n)) }

// reset makes s a fresh tenant first seen at ns.
func (s *state) reset(id tenant.ID, ns int64) {
	*s = state{id: id, first: ns, last: ns, bucket: bucketOf(ns)}
	s.evaluated = s.bucket - 1
}

// roll moves the rings forward to bucket b, clearing what falls out.
func (s *state) roll(b int64) {
	if b <= s.bucket {
		return
	}
	for x := max(s.bucket+1, b-int64(fineSlots)+1); x <= b; x++ {
		i := mod(x, fineSlots)
		s.fine[i] = counts{}
		s.fineH[i] = hist{}
	}
	oldM, newM := minuteOf(s.bucket), minuteOf(b)
	if newM > oldM {
		// The minute that closes keeps its p99 for the history.
		if q := quantileOf(&s.minH[mod(oldM, windowMinutes)], 0.99); q >= 0 {
			s.minP[mod(oldM, HistoryMinutes)] = uint8(q + 1)
		}
		for m := max(oldM+1, newM-HistoryMinutes+1); m <= newM; m++ {
			s.mins[mod(m, HistoryMinutes)] = counts{}
			s.minP[mod(m, HistoryMinutes)] = 0
		}
		for m := max(oldM+1, newM-windowMinutes+1); m <= newM; m++ {
			s.minH[mod(m, windowMinutes)] = hist{}
		}
	}
	s.bucket = b
}

// record counts one sample taken at ns.
func (s *state) record(smp *Sample, ns int64) {
	b := bucketOf(ns)
	s.roll(b)
	if b < s.bucket { // a clock that stepped back: count it now
		b = s.bucket
	}
	if ns > s.last {
		s.last = ns
	}
	bin := binOf(smp.Latency)
	i := mod(b, fineSlots)
	s.fine[i].add(smp)
	s.fineH[i].add(bin)
	m := minuteOf(b)
	s.mins[mod(m, HistoryMinutes)].add(smp)
	s.minH[mod(m, windowMinutes)].add(bin)
}

// window returns the figures of the window of span ending at ns; the
// rings must have been rolled to ns's bucket. The 1m window is the current
// bucket and the five before it; longer ones are whole minutes (the
// current one and those before it). Seconds is the time they cover.
func (s *state) window(span time.Duration, ns int64) Window {
	w := Window{Span: span}
	var c counts64
	var h merged
	b := bucketOf(ns)
	if span <= time.Minute {
		for x := b - int64(fineSlots) + 1; x <= b; x++ {
			if x > s.bucket || x <= s.bucket-int64(fineSlots) {
				continue
			}
			i := mod(x, fineSlots)
			c.add(&s.fine[i])
			h.add(&s.fineH[i])
		}
		w.Seconds = (time.Duration(fineSlots-1)*Bucket + time.Duration(ns-b*int64(Bucket))).Seconds()
	} else {
		n := int64(span / time.Minute)
		m := minuteOf(b)
		for x := m - n + 1; x <= m; x++ {
			if x > minuteOf(s.bucket) || x <= minuteOf(s.bucket)-windowMinutes {
				continue
			}
			c.add(&s.mins[mod(x, HistoryMinutes)])
			h.add(&s.minH[mod(x, windowMinutes)])
		}
		w.Seconds = (time.Duration(n-1)*time.Minute + time.Duration(ns-m*int64(time.Minute))).Seconds()
	}
	w.Requests, w.Errors, w.Throttled, w.Queued = c.req, c.err, c.thr, c.que
	if w.Seconds > 0 {
		w.Rate = float64(w.Requests) / w.Seconds
	}
	if w.Requests > 0 {
		w.ErrorRate = float64(w.Errors) / float64(w.Requests)
	}
	if q := h.quantile(0.5); q >= 0 {
		w.P50 = binValue(q)
	}
	if q := h.quantile(0.99); q >= 0 {
		w.P99 = binValue(q)
	}
	w.P50Ms, w.P99Ms = ms(w.P50), ms(w.P99)
	return w
}

// series returns the history, a point a minute, oldest first, ending with
// the minute of ns.
func (s *state) series(ns int64) []Point {
	m := minuteOf(bucketOf(ns))
	pts := make([]Point, 0, HistoryMinutes)
	newest := minuteOf(s.bucket)
	for x := m - HistoryMinutes + 1; x <= m; x++ {
		p := Point{At: time.Unix(0, x*int64(time.Minute)).UTC()}
		if x <= newest && x > newest-HistoryMinutes {
			c := s.mins[mod(x, HistoryMinutes)]
			p.Requests, p.Errors, p.Throttled = int64(c.req), int64(c.err), int64(c.thr)
			q := -1
			if x == newest {
				q = quantileOf(&s.minH[mod(x, windowMinutes)], 0.99)
			} else if v := s.minP[mod(x, HistoryMinutes)]; v > 0 {
				q = int(v) - 1
			}
			if q >= 0 {
				p.P99Ms = ms(binValue(q))
			}
		}
		pts = append(pts, p)
	}
	return pts
}

type counts64 struct{ req, err, thr, que int64 }

func (c *counts64) add(x *counts) {
	c.req += int64(x.req)
	c.err += int64(x.err)
	c.thr += int64(x.thr)
	c.que += int64(x.que)
}

// StateBytes is the fixed size of one tracked tenant's figures (the map
// entry and the id's bytes come on top).
const StateBytes = int(unsafe.Sizeof(state{}))
