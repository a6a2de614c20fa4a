package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/events"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func TestHubWakesOnlyTheTenantsStreams(t *testing.T) {
	h := events.NewHub(events.HubOptions{})
	acme, globex := tenant.MustParse("acme"), tenant.MustParse("globex")
	a, err := h.Subscribe(acme)
	if err != nil {
		t.Fatal(err)
	}
	g, err := h.Subscribe(globex)
	if err != nil {
		t.Fatal(err)
	}
	// Many notifications never block, and coalesce into one wake-up.
	for range 100 {
		h.Notify(acme)
	}
	select {
	case <-a.C():
	default:
		t.Fatal("acme's stream was not woken")
	}
	select {
	case <-a.C():
		t.Fatal("100 notifications made more than one pending wake-up")
	default:
	}
	select {
	case <-g.C():
		t.Fatal("globex's stream was woken by acme's commit")
	default:
	}
	h.Notify(tenant.MustParse("initech")) // nobody listens: nothing happens
	a.Close()
	a.Close()
	h.Notify(acme) // a closed subscription is not written to
	if h.Open(acme) != 0 || h.Total() != 1 {
		t.Fatalf("open %d / total %d after close, want 0 / 1", h.Open(acme), h.Total())
	}
}

func TestHubLimits(t *testing.T) {
	h := events.NewHub(events.HubOptions{MaxPerTenant: 2, MaxTotal: 3})
	acme, globex := tenant.MustParse("acme"), tenant.MustParse("globex")
	a1, _ := h.Subscribe(acme)
	if _, err := h.Subscribe(acme); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(acme); !errors.Is(err, events.ErrTooManyStreams) {
		t.Fatalf("third stream of acme: %v, want ErrTooManyStreams", err)
	}
	if _, err := h.Subscribe(globex); err != nil {
		t.Fatalf("globex is not limited by acme's streams: %v", err)
	}
	if _, err := h.Subscribe(globex); !errors.Is(err, events.ErrHubFull) {
		t.Fatalf("fourth stream: %v, want ErrHubFull", err)
	}
	a1.Close()
	if _, err := h.Subscribe(acme); err != nil {
		t.Fatalf("a closed stream's place was not freed: %v", err)
	}
	if _, err := h.Subscribe(tenant.ID{}); !errors.Is(err, tenant.ErrMissing) {
		t.Fatalf("subscribe without a tenant: %v, want tenant.ErrMissing", err)
	}
}

func TestHubShutdownEndsStreamsAndRefusesNewOnes(t *testing.T) {
	h := events.NewHub(events.HubOptions{})
	acme := tenant.MustParse("acme")
	s, err := h.Subscribe(acme)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
		t.Fatal("Done before Shutdown")
	default:
	}
	h.Shutdown()
	h.Shutdown()
	<-s.Done()
	if _, err := h.Subscribe(acme); !errors.Is(err, events.ErrHubClosed) {
		t.Fatalf("subscribe after shutdown: %v, want ErrHubClosed", err)
	}
}

func TestHubPollWakesEverySubscribedTenant(t *testing.T) {
	h := events.NewHub(events.HubOptions{})
	a, _ := h.Subscribe(tenant.MustParse("acme"))
	g, _ := h.Subscribe(tenant.MustParse("globex"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Poll(ctx, 10*time.Millisecond) }()
	<-a.C()
	<-g.C()
	cancel()
	<-done // Poll returns once its context is done
}
