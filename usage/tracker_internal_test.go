package usage

import (
	"fmt"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func (t *Tracker) observeNow(id tenant.ID, u store.Usage) { t.Observe(id, u, t.Begin()) }

// TestTrackerBoundAndPrune: a full tracker lets a bigger tenant in in
// place of the smallest and keeps a smaller one out, so the top stays
// exact; prune drops what a sweep neither observed nor touched, and keeps
// what requests observed during the sweep.
func TestTrackerBoundAndPrune(t *testing.T) {
	tr := NewTracker(3)
	id := func(s string) tenant.ID { return tenant.MustParse(s) }
	tr.observeNow(id("aa"), store.Usage{Records: 1, Bytes: 10})
	tr.observeNow(id("bb"), store.Usage{Records: 1, Bytes: 20})
	tr.observeNow(id("cc"), store.Usage{Records: 1, Bytes: 30})
	tr.observeNow(id("dd"), store.Usage{Records: 1, Bytes: 5})  // smaller than all: kept out
	tr.observeNow(id("ee"), store.Usage{Records: 1, Bytes: 25}) // evicts aa
	s := tr.Snapshot(2)
	if got := fmt.Sprint(ranks(s.Top), s.Other, s.Tracked); got != "[cc:{1 30} ee:{1 25}] {1 20} 3" {
		t.Fatalf("snapshot: %s", got)
	}

	start := tr.Begin()
	tr.observeNow(id("cc"), store.Usage{Records: 2, Bytes: 31}) // seen by the sweep
	tr.Touch(id("bb"))                                          // read failed, kept
	tr.observeNow(id("ff"), store.Usage{Records: 1, Bytes: 1})  // full: smaller than all, kept out
	tr.prune(start, time.Unix(100, 0), time.Second)             // ee was not seen
	s = tr.Snapshot(5)
	if got := fmt.Sprint(ranks(s.Top), s.Other, s.Tracked, s.SweptAt.Unix(), s.SweepDuration); got != "[cc:{2 31} bb:{1 20}] {0 0} 2 100 1s" {
		t.Fatalf("after prune: %s", got)
	}
}

func ranks(rs []TenantUsage) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s:%v", r.ID, r.Usage))
	}
	return out
}

// TestTrackerRemovalBeatsReadsUnderWay: a read that began before the
// tenant was removed cannot bring it back; a read that begins after (the
// id made again) can; tombstones go after two complete sweeps.
func TestTrackerRemovalBeatsReadsUnderWay(t *testing.T) {
	tr := NewTracker(10)
	acme := tenant.MustParse("acme")
	tr.observeNow(acme, store.Usage{Records: 1, Bytes: 10})
	mark := tr.Begin() // a read of acme's usage begins
	tr.Remove(acme)    // acme is offboarded meanwhile
	tr.Observe(acme, store.Usage{Records: 1, Bytes: 10}, mark)
	if s := tr.Snapshot(5); s.Tracked != 0 {
		t.Fatalf("a read under way brought acme back: %+v", s)
	}
	tr.Observe(acme, store.Usage{Records: 2, Bytes: 20}, tr.Begin()) // acme made again, read afresh
	if s := tr.Snapshot(5); s.Tracked != 1 || s.Top[0].Usage.Bytes != 20 {
		t.Fatalf("a read after the removal was ignored: %+v", s)
	}
	tr.Remove(acme)
	for range 2 {
		start := tr.Begin()
		tr.prune(start, time.Now(), time.Millisecond)
	}
	if len(tr.removed) != 0 {
		t.Fatalf("tombstones left after two sweeps: %v", tr.removed)
	}
}
