package health

import (
	"math"
	"time"
)

// Baseline configures the anomaly flags. The zero value of each field
// means its default.
//
// Each tenant has its own baseline per signal: an EWMA of the signal's
// value per closed bucket (weight Alpha) and an EWMA of the absolute
// deviation from it (the spread, robust to single outliers). A bucket is
// beyond the baseline when its value exceeds
//
//	baseline + max(K·spread, floor, relative floor·baseline)
//
// and the signal's minimum (the floors below), after a warm-up of WarmUp
// buckets. A flag is raised after RaiseAfter consecutive buckets beyond,
// and cleared after ClearAfter consecutive buckets back inside. Buckets
// beyond the baseline teach it only at Alpha·Slow, so a long incident
// stays flagged (for hours at the defaults) while a lasting change of a
// tenant's normal is learned eventually.
//
// The floors keep small numbers from raising flags: error_rate and
// latency_p99 are judged only on buckets with at least MinRequests
// requests, error_rate needs at least MinErrors errors and 5% of the
// requests, and rises of at least 2 points and twice the baseline;
// latency_p99 must rise by 5 ms and half its baseline; request_rate by
// 1 request/s and its baseline (a doubling). Flags are raised on rises only.
type Baseline struct {
	Alpha       float64 // EWMA weight per bucket; default 0.05 (a time constant of about 3 minutes)
	Slow        float64 // factor on Alpha for buckets beyond the baseline; default 0.1
	K           float64 // spreads beyond the baseline; default 4
	WarmUp      int     // buckets learned before any flag; default 30 (5 minutes)
	RaiseAfter  int     // consecutive buckets beyond to raise; default 3
	ClearAfter  int     // consecutive buckets inside to clear; default 6
	MinRequests int     // requests in a bucket to judge error_rate and latency_p99; default 20
	MinErrors   int     // errors in a bucket to judge error_rate beyond; default 5
}

func (b Baseline) withDefaults() Baseline {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	defi := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&b.Alpha, 0.05)
	def(&b.Slow, 0.1)
	def(&b.K, 4)
	defi(&b.WarmUp, 30)
	defi(&b.RaiseAfter, 3)
	defi(&b.ClearAfter, 6)
	defi(&b.MinRequests, 20)
	defi(&b.MinErrors, 5)
	return b
}

// floors of each signal: an absolute and a relative minimum rise, and a
// minimum value.
type floors struct{ abs, rel, min float64 }

var signalFloors = [3]floors{
	{abs: 0.02, rel: 1.0, min: 0.05}, // error_rate
	{abs: 5, rel: 0.5},               // latency_p99, ms
	{abs: 1, rel: 1.0},               // request_rate, per second
}

// detector is one signal's baseline and flag state for one tenant.
type detector struct {
	mean, dev float64
	value     float64 // the last judged value
	learned   uint32  // buckets learned
	above     uint16  // consecutive buckets beyond
	inside    uint16  // consecutive buckets inside while raised
	raised    bool
	since     int64 // unix nanoseconds the flag was raised
}

// change is a flag raised or cleared by a judgement.
type change int

const (
	unchanged change = iota
	raised
	cleared
)

// judge feeds one closed bucket's value (ok false: too few requests to
// judge this signal; canRise false: it teaches the baseline but cannot be
// beyond it) taken at ns, and says whether the flag changed.
func (d *detector) judge(sig int, x float64, ok, canRise bool, ns int64, p *Baseline) change {
	if !ok {
		d.above = 0
		return d.back(p)
	}
	d.value = x
	if d.learned == 0 {
		d.mean, d.learned = x, 1
		return unchanged
	}
	f := signalFloors[sig]
	thr := d.mean + math.Max(p.K*d.dev, math.Max(f.abs, f.rel*d.mean))
	beyond := canRise && int(d.learned) >= p.WarmUp && x > thr && x >= f.min
	a := p.Alpha
	if n := float64(d.learned + 1); 1/n > a && int(d.learned) < p.WarmUp {
		a = 1 / n // warm-up: the plain mean of the first buckets
	}
	if beyond {
		a *= p.Slow
	}
	dev := math.Abs(x - d.mean)
	d.mean += a * (x - d.mean)
	d.dev += a * (dev - d.dev)
	if d.learned < math.MaxUint32 {
		d.learned++
	}
	if !beyond {
		d.above = 0
		return d.back(p)
	}
	d.inside = 0
	if d.above < math.MaxUint16 {
		d.above++
	}
	if !d.raised && int(d.above) >= p.RaiseAfter {
		d.raised, d.since = true, ns
		return raised
	}
	return unchanged
}

// back counts a bucket inside the baseline.
func (d *detector) back(p *Baseline) change {
	if !d.raised {
		return unchanged
	}
	d.inside++
	if int(d.inside) >= p.ClearAfter {
		d.raised, d.inside, d.since = false, 0, 0
		return cleared
	}
	return unchanged
}

// flag is d's raised flag.
func (d *detector) flag(sig int) Flag {
	return Flag{Signal: Signals[sig], Since: time.Unix(0, d.since).UTC(), Value: d.value, Baseline: d.mean, Spread: d.dev}
}

// judgeBucket judges the closed bucket b of s on every signal, calling
// on for each flag that changes.
func (s *state) judgeBucket(b int64, p *Baseline, on func(sig int, c change)) {
	c := s.fine[mod(b, fineSlots)]
	h := &s.fineH[mod(b, fineSlots)]
	ns := (b + 1) * int64(Bucket)
	enough := int(c.req) >= p.MinRequests
	var vals [3]float64
	var ok [3]bool
	rise := [3]bool{int(c.err) >= p.MinErrors, true, true}
	if enough {
		vals[0], ok[0] = float64(c.err)/float64(c.req), true
		if q := quantileOf(h, 0.99); q >= 0 {
			vals[1], ok[1] = ms(binValue(q)), true
		}
	}
	vals[2], ok[2] = float64(c.req)/Bucket.Seconds(), true
	for i := range s.det {
		if ch := s.det[i].judge(i, vals[i], ok[i], rise[i], ns, p); ch != unchanged {
			on(i, ch)
		}
	}
}
