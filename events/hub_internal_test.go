package events

import (
	"testing"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TestGenerationsOnlyGrow: a tenant's wake-up generation grows with each
// of its Notify calls only, and a tenant subscribed again never starts at
// a generation it had before (a shared read keyed by an old generation
// could predate the new subscription's commits).
func TestGenerationsOnlyGrow(t *testing.T) {
	h := NewHub(HubOptions{})
	acme, globex := tenant.MustParse("acme"), tenant.MustParse("globex")
	a, _ := h.Subscribe(acme)
	g, _ := h.Subscribe(globex)
	a0, g0 := a.generation(), g.generation()
	h.Notify(acme)
	h.Notify(acme)
	a2 := a.generation()
	if a2 <= a0 || g.generation() != g0 {
		t.Fatalf("acme %d→%d, globex %d→%d: want acme to grow and globex to stay", a0, a2, g0, g.generation())
	}
	a.Close() // acme's entry goes
	h.Notify(globex)
	b, _ := h.Subscribe(acme)
	if b.generation() < a2 {
		t.Fatalf("acme subscribed again at generation %d, below its earlier %d", b.generation(), a2)
	}
}
