package relay

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newBucket(100, 50, t0) // 100 per second, 50 at once
	if n, _ := b.take(80, t0); n != 50 {
		t.Fatalf("took %d from a full bucket of 50", n)
	}
	n, wait := b.take(10, t0)
	if n != 0 || wait != 10*time.Millisecond {
		t.Fatalf("empty bucket: took %d, wait %s; want 0 and 10ms", n, wait)
	}
	if n, _ := b.take(80, t0.Add(200*time.Millisecond)); n != 20 {
		t.Fatalf("after 200ms took %d, want 20", n)
	}
	b.refund(15)
	if n, _ := b.take(80, t0.Add(200*time.Millisecond)); n != 15 {
		t.Fatalf("after a refund of 15 took %d", n)
	}
	if n, _ := b.take(80, t0.Add(time.Hour)); n != 50 {
		t.Fatalf("a long pause fills the bucket to its burst only: took %d", n)
	}
	unlimited := newBucket(-1, 0, t0)
	if n, _ := unlimited.take(1000, t0); n != 1000 {
		t.Fatalf("no rate: took %d of 1000", n)
	}
}
