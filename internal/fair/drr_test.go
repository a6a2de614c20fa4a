package fair

import (
	"math"
	"testing"
)

// TestShareFollowsWeights drives the DRR directly: with every key always
// backlogged, each key's share of many Pops is within ±5% of its weight's
// share.
func TestShareFollowsWeights(t *testing.T) {
	weights := map[string]int{"a": 1, "b": 2, "c": 5, "d": 3}
	d := New[string, int]()
	total := 0
	for _, w := range weights {
		total += w
	}
	for k, w := range weights {
		for i := 0; i < 10; i++ {
			d.Push(k, w, i)
		}
	}
	got := map[string]int{}
	const pops = 110_000
	for i := 0; i < pops; i++ {
		k, v, ok := d.Pop(nil)
		if !ok {
			t.Fatal("no item while all keys are backlogged")
		}
		got[k]++
		d.Push(k, weights[k], v) // stay backlogged
	}
	for k, w := range weights {
		want := float64(pops) * float64(w) / float64(total)
		if math.Abs(float64(got[k])-want) > 0.05*want {
			t.Errorf("key %s (weight %d): %d pops, want %.0f ±5%%", k, w, got[k], want)
		}
	}
}

func TestFIFOWithinKeyAndRemove(t *testing.T) {
	d := New[string, int]()
	for i := 1; i <= 4; i++ {
		d.Push("a", 1, i)
	}
	if !d.Remove("a", 2) || d.Remove("a", 9) {
		t.Fatal("Remove: want true for a queued item, false for a missing one")
	}
	var order []int
	for {
		_, v, ok := d.Pop(nil)
		if !ok {
			break
		}
		order = append(order, v)
	}
	if len(order) != 3 || order[0] != 1 || order[1] != 3 || order[2] != 4 || d.Len() != 0 {
		t.Fatalf("order %v len %d, want [1 3 4] and empty", order, d.Len())
	}
}

// TestIneligibleKeySkipped: a key that may not run does not block others,
// and nothing is returned when no key is eligible.
func TestIneligibleKeySkipped(t *testing.T) {
	d := New[string, int]()
	d.Push("a", 5, 1)
	d.Push("b", 1, 2)
	if k, _, ok := d.Pop(func(k string) bool { return k != "a" }); !ok || k != "b" {
		t.Fatalf("got %q %v, want b", k, ok)
	}
	if _, _, ok := d.Pop(func(string) bool { return false }); ok {
		t.Fatal("popped with no eligible key")
	}
	if k, _, ok := d.Pop(nil); !ok || k != "a" {
		t.Fatalf("got %q %v, want a", k, ok)
	}
}

// TestNoStarvation: a weight-1 key among heavy keys is served within one
// round (sum of weights) of Pops.
func TestNoStarvation(t *testing.T) {
	d := New[string, int]()
	for i := 0; i < 1000; i++ {
		d.Push("heavy1", 50, i)
		d.Push("heavy2", 50, i)
	}
	d.Push("light", 1, 0)
	for i := 0; i <= 101; i++ {
		if k, _, _ := d.Pop(nil); k == "light" {
			return
		}
	}
	t.Fatal("light key not served within one round")
}
