// Package fair holds the deficit round robin (DRR) core of the admission
// queue (package admission): per-key FIFO queues served in weighted turns.
package fair

// DRR is a set of per-key FIFO queues served by deficit round robin with
// unit cost: over many rounds, a backlogged key whose items are eligible
// gets a share of Pops proportional to its weight. It is not safe for
// concurrent use; callers hold their own lock.
type DRR[K comparable, V comparable] struct {
	flows map[K]*flow[V]
	ring  []K // keys with queued items, in turn order
	cur   int // index in ring of the key whose turn it is
	n     int // queued items, all keys
}

type flow[V comparable] struct {
	items   []V
	weight  int
	deficit int
}

// New returns an empty DRR.
func New[K comparable, V comparable]() *DRR[K, V] {
	return &DRR[K, V]{flows: make(map[K]*flow[V])}
}

// Len returns the number of queued items of all keys.
func (d *DRR[K, V]) Len() int { return d.n }

// QueueLen returns the number of items queued for k.
func (d *DRR[K, V]) QueueLen(k K) int {
	if f := d.flows[k]; f != nil {
		return len(f.items)
	}
	return 0
}

// Backlog calls fn with every key that has items queued and how many, in
// turn order.
func (d *DRR[K, V]) Backlog(fn func(k K, queued int)) {
	for _, k := range d.ring {
		fn(k, len(d.flows[k].items))
	}
}

// Push queues v at the tail of k's queue; weight (at least 1) is k's
// quantum per round, updated on every Push.
func (d *DRR[K, V]) Push(k K, weight int, v V) {
	if weight < 1 {
		weight = 1
	}
	f := d.flows[k]
	if f == nil {
		f = &flow[V]{}
		d.flows[k] = f
		d.ring = append(d.ring, k)
		if len(d.ring) == 1 {
			d.cur = 0
			f.deficit = weight // first key: its turn starts now
		}
	}
	f.weight = weight
	f.items = append(f.items, v)
	d.n++
}

// Remove takes v out of k's queue (a cancelled waiter) and reports whether
// it was there.
func (d *DRR[K, V]) Remove(k K, v V) bool {
	f := d.flows[k]
	if f == nil {
		return false
	}
	for i, x := range f.items {
		if x == v {
			f.items = append(f.items[:i], f.items[i+1:]...)
			d.n--
			if len(f.items) == 0 {
				d.drop(k)
			}
			return true
		}
	}
	return false
}

// Pop returns the next item in DRR order among keys for which eligible
// returns true (nil: all keys); ok is false when no eligible key has a
// queued item. A key found ineligible loses the rest of its turn.
func (d *DRR[K, V]) Pop(eligible func(K) bool) (k K, v V, ok bool) {
	for steps := 0; len(d.ring) > 0 && steps <= 2*len(d.ring)+1; steps++ {
		k = d.ring[d.cur]
		f := d.flows[k]
		if f.deficit >= 1 && (eligible == nil || eligible(k)) {
			f.deficit--
			v = f.items[0]
			var zero V
			f.items[0] = zero
			f.items = f.items[1:]
			d.n--
			if len(f.items) == 0 {
				d.drop(k)
			}
			return k, v, true
		}
		// Turn over: the next key starts its turn with its quantum.
		f.deficit = 0
		d.cur = (d.cur + 1) % len(d.ring)
		nf := d.flows[d.ring[d.cur]]
		nf.deficit += nf.weight
	}
	var zk K
	var zv V
	return zk, zv, false
}

// drop removes k (whose queue is empty) from the ring; the next key's turn
// starts if it was k's turn.
func (d *DRR[K, V]) drop(k K) {
	delete(d.flows, k)
	for i, x := range d.ring {
		if x != k {
			continue
		}
		d.ring = append(d.ring[:i], d.ring[i+1:]...)
		switch {
		case len(d.ring) == 0:
			d.cur = 0
		case i < d.cur:
			d.cur--
		case i == d.cur:
			if d.cur >= len(d.ring) {
				d.cur = 0
			}
			nf := d.flows[d.ring[d.cur]]
			nf.deficit += nf.weight
		}
		return
	}
}
