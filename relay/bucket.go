package relay

import (
	"math"
	"time"
)

// bucket is a token bucket of events: rate per second, up to burst. Not
// safe for concurrent use; a tenant's batches run one at a time.
type bucket struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int, now time.Time) *bucket {
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// take takes up to n tokens and returns how many it took; with none to
// take it returns 0 and how long until one is there.
func (b *bucket) take(n int, now time.Time) (int, time.Duration) {
	if b.rate <= 0 {
		return n, 0
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(b.burst, b.tokens+el*b.rate)
	}
	b.last = now
	got := min(n, int(b.tokens))
	if got < 1 {
		wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
		return 0, max(wait, time.Millisecond)
	}
	b.tokens -= float64(got)
	return got, 0
}

// refund gives back n tokens taken but not used.
func (b *bucket) refund(n int) {
	if b.rate > 0 && n > 0 {
		b.tokens = math.Min(b.burst, b.tokens+float64(n))
	}
}
