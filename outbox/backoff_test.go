package outbox_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulkhead-dev/bulkhead/outbox"
	"github.com/bulkhead-dev/bulkhead/store"
)

// TestRunBacksOffDoubling: in a bubble of fake time, a consumer that keeps
// failing on a tenant is tried again after MinBackoff, then twice as long
// each time, never longer than MaxBackoff; once it succeeds it is not
// tried again until there is something new.
func TestRunBacksOffDoubling(t *testing.T) {
	f := newFixture(t, "sqlite", store.Pooled)
	acme := f.tenant(t, "acme")
	f.put(t, acme, "notes", "n1", `{}`)
	synctest.Test(t, func(t *testing.T) {
		var at []time.Time
		d, err := outbox.NewDispatcher(outbox.DispatcherOptions{Store: f.router, Tenants: f.tenants(), Workers: 1,
			Poll: time.Hour, MinBackoff: time.Second, MaxBackoff: 4 * time.Second})
		must(t, err)
		must(t, d.Handle("flaky", func(context.Context, store.Event) error {
			at = append(at, time.Now())
			if len(at) < 6 {
				return errors.New("not yet")
			}
			return nil
		}))
		ctx, stop := context.WithCancel(context.Background())
		ran := make(chan error)
		go func() { ran <- d.Run(ctx) }()
		time.Sleep(30 * time.Minute) // fake: the bubble's clock
		synctest.Wait()
		stop()
		must(t, <-ran)
		if len(at) != 6 {
			t.Fatalf("%d attempts, want 6 (5 failures and the success)", len(at))
		}
		var gaps []time.Duration
		for i := 1; i < len(at); i++ {
			gaps = append(gaps, at[i].Sub(at[i-1]))
		}
		want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
		for i := range want {
			if gaps[i] != want[i] {
				t.Fatalf("pauses between attempts %v, want %v", gaps, want)
			}
		}
	})
}
