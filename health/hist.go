package health

import (
	"math"
	"math/bits"
	"time"
)

// Latencies are kept in a small fixed log-scale histogram: bin 0 holds
// everything under histBase (32 µs), bin i (1..nBins-2) holds
// [histBase·√2^(i-1), histBase·√2^i), and the last bin everything from
// about 16.8 s up. A quantile is reported as its bin's geometric middle,
// so it is within 19% (2^¼−1) of the true value between 32 µs and 16.8 s.
const (
	nBins    = 40
	histBase = 32 * time.Microsecond
)

// hist is one bucket's latency histogram. Bins are uint16 to keep a tenant
// small; when one would overflow every bin is halved and shift counts the
// halvings, so merged histograms weigh each part by its true size.
type hist struct {
	bins  [nBins]uint16
	shift uint8
}

// binOf returns the bin of latency d.
func binOf(d time.Duration) int {
	x := uint64(max(d, 0))
	base := uint64(histBase)
	if x < base {
		return 0
	}
	q := x / base
	o := bits.Len64(q) - 1 // octave: base·2^o <= x < base·2^(o+1)
	lo := base << o
	half := 0
	if x >= lo+lo*4142/10000 { // past lo·√2
		half = 1
	}
	b := 1 + 2*o + half
	if b > nBins-1 {
		b = nBins - 1
	}
	return b
}

// binValue is the latency a bin stands for: its geometric middle (bin 0:
// histBase/√2; the last bin: its lower bound·2^¼).
func binValue(b int) time.Duration { return binValues[max(0, min(b, nBins-1))] }

var binValues = func() (v [nBins]time.Duration) {
	base := float64(histBase)
	v[0] = time.Duration(base / math.Sqrt2)
	for b := 1; b < nBins; b++ {
		v[b] = time.Duration(base * math.Pow(2, float64(b-1)/2) * math.Pow(2, 0.25))
	}
	return v
}()

func (h *hist) add(b int) {
	if h.bins[b] == math.MaxUint16 {
		for i := range h.bins {
			h.bins[i] = (h.bins[i] + 1) / 2 // a non-empty bin stays non-empty
		}
		h.shift++
	}
	h.bins[b]++
}

// merged is histograms added up at their true weights.
type merged [nBins]uint64

func (m *merged) add(h *hist) {
	for i, c := range h.bins {
		m[i] += uint64(c) << h.shift
	}
}

// quantile returns the bin holding quantile q (0 < q <= 1), or -1 if empty.
func (m *merged) quantile(q float64) int {
	var total uint64
	for _, c := range m {
		total += c
	}
	if total == 0 {
		return -1
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank == 0 {
		rank = 1
	}
	var cum uint64
	for i, c := range m {
		cum += c
		if cum >= rank {
			return i
		}
	}
	return nBins - 1
}

// quantileOf is quantile over a single histogram.
func quantileOf(h *hist, q float64) int {
	var m merged
	m.add(h)
	return m.quantile(q)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
