package sched

import "errors"

// ErrClosed: the scheduler was closed.
var ErrClosed = errors.New("sched: scheduler closed")

// tagHeap orders queued tenants by virtual start time, ties by id so that
// the order is deterministic.
type tagHeap []*entry

func (h tagHeap) Len() int { return len(h) }
func (h tagHeap) Less(i, j int) bool {
	if h[i].tag != h[j].tag {
		return h[i].tag < h[j].tag
	}
	return h[i].id.String() < h[j].id.String()
}
func (h tagHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *tagHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *tagHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
