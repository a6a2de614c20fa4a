package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TestUsageTrackerBoundAndPrune: a full tracker lets a bigger tenant in
// in place of the smallest and keeps a smaller one out, so the top stays
// exact; prune drops what a sweep neither observed nor touched, and keeps
// what requests observed during the sweep.
func TestUsageTrackerBoundAndPrune(t *testing.T) {
	tr := newUsageTracker(3)
	id := func(s string) tenant.ID { return tenant.MustParse(s) }
	tr.observe(id("aa"), store.Usage{Records: 1, Bytes: 10})
	tr.observe(id("bb"), store.Usage{Records: 1, Bytes: 20})
	tr.observe(id("cc"), store.Usage{Records: 1, Bytes: 30})
	tr.observe(id("dd"), store.Usage{Records: 1, Bytes: 5})  // smaller than all: kept out
	tr.observe(id("ee"), store.Usage{Records: 1, Bytes: 25}) // evicts aa
	s := tr.snapshot(2)
	if got := fmt.Sprint(ranks(s.top), s.other, s.tracked); got != "[cc:{1 30} ee:{1 25}] {1 20} 3" {
		t.Fatalf("snapshot: %s", got)
	}

	start := tr.begin()
	tr.observe(id("cc"), store.Usage{Records: 2, Bytes: 31}) // seen by the sweep
	tr.touch(id("bb"))                                       // read failed, kept
	tr.observe(id("ff"), store.Usage{Records: 1, Bytes: 1})  // full: smaller than all, kept out
	tr.prune(start, time.Unix(100, 0), time.Second)          // ee was not seen
	s = tr.snapshot(5)
	if got := fmt.Sprint(ranks(s.top), s.other, s.tracked, s.sweptAt.Unix(), s.sweepDur); got != "[cc:{2 31} bb:{1 20}] {0 0} 2 100 1s" {
		t.Fatalf("after prune: %s", got)
	}
}

func ranks(rs []tenantUsageRank) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s:%v", r.id, r.usage))
	}
	return out
}

// TestUsageTrackerRemovalBeatsReadsUnderWay: a read that began before the
// tenant was removed cannot bring it back; a read that begins after (the
// id made again) can; tombstones go after two complete sweeps.
func TestUsageTrackerRemovalBeatsReadsUnderWay(t *testing.T) {
	tr := newUsageTracker(10)
	acme := tenant.MustParse("acme")
	tr.observe(acme, store.Usage{Records: 1, Bytes: 10})
	mark := tr.begin() // a read of acme's usage begins
	tr.remove(acme)    // acme is offboarded meanwhile
	tr.observeSince(acme, store.Usage{Records: 1, Bytes: 10}, mark)
	if s := tr.snapshot(5); s.tracked != 0 {
		t.Fatalf("a read under way brought acme back: %+v", s)
	}
	tr.observeSince(acme, store.Usage{Records: 2, Bytes: 20}, tr.begin()) // acme made again, read afresh
	if s := tr.snapshot(5); s.tracked != 1 || s.top[0].usage.Bytes != 20 {
		t.Fatalf("a read after the removal was ignored: %+v", s)
	}
	tr.remove(acme)
	for range 2 {
		start := tr.begin()
		tr.prune(start, time.Now(), time.Millisecond)
	}
	if len(tr.removed) != 0 {
		t.Fatalf("tombstones left after two sweeps: %v", tr.removed)
	}
}
