package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
)

// trim runs one Tx.TrimEvents in its own write transaction.
func (e *Env) trim(ctx context.Context, before time.Time, keep, max int) (n int64, err error) {
	err = e.Router.Tx(ctx, func(tx *store.Tx) error {
		var err error
		n, err = tx.TrimEvents(ctx, before, keep, max)
		return err
	})
	return n, err
}

// testEventsTrim: trimming deletes a prefix, by count and by age; a reader
// behind it gets ErrEventsExpired, one at or after it reads on.
func testEventsTrim(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	var recs []store.Record
	for i := range 10 {
		recs = append(recs, e.mustPut(t, ctx, "logs", fmt.Sprintf("r%d", i), `{}`))
	}
	// Keep the newest 4, at most 5 at a time: two trims.
	if n, err := e.trim(ctx, time.Time{}, 4, 5); err != nil || n != 5 {
		t.Fatalf("first trim: %d, %v; want 5", n, err)
	}
	if n, err := e.trim(ctx, time.Time{}, 4, 5); err != nil || n != 1 {
		t.Fatalf("second trim: %d, %v; want 1", n, err)
	}
	if n, err := e.trim(ctx, time.Time{}, 4, 5); err != nil || n != 0 {
		t.Fatalf("third trim: %d, %v; want 0", n, err)
	}
	for _, after := range []int64{0, 3, 5} {
		if _, _, err := e.events(ctx, after, 10); !errors.Is(err, store.ErrEventsExpired) {
			t.Fatalf("after %d, behind the trim: %v, want ErrEventsExpired", after, err)
		}
	}
	if got := eventLines(e.allEvents(t, ctx, 6)); !strings.HasPrefix(got, "7 acme logs/r6") || strings.Count(got, "\n") != 3 {
		t.Fatalf("after 6:\n%s", got)
	}
	// By age: the events stamped before r8 (7 and 8's predecessors).
	if n, err := e.trim(ctx, recs[8].UpdatedAt, 0, 100); err != nil || n != 2 {
		t.Fatalf("trim before r8's time: %d, %v; want 2 (r6, r7)", n, err)
	}
	if got := eventLines(e.allEvents(t, ctx, 8)); got != "9 acme logs/r8 create v1\n10 acme logs/r9 create v1" {
		t.Fatalf("after the age trim:\n%s", got)
	}
	// An event stamped late among earlier ones: trimming by age never
	// leaves a hole (it stops at the first event that is new enough).
	e.clockMu.Lock()
	e.clock = e.clock.Add(-time.Hour)
	e.clockMu.Unlock()
	old := e.mustPut(t, ctx, "logs", "late", `{}`) // seq 11, stamped an hour back
	e.mustPut(t, ctx, "logs", "later", `{}`)       // seq 12
	if n, err := e.trim(ctx, old.UpdatedAt.Add(time.Microsecond), 0, 100); err != nil || n != 0 {
		t.Fatalf("trim before the late event's time: %d, %v; want 0 (seq 9 is newer, and nothing after it may go first)", n, err)
	}
	if got := e.allEvents(t, ctx, 8); len(got) != 4 {
		t.Fatalf("after a no-op trim: %s", eventLines(got))
	}
	if _, err := e.trim(ctx, time.Time{}, -1, 10); !errors.Is(err, store.ErrInvalidLimit) {
		t.Fatalf("negative keep: %v", err)
	}
	err := e.Router.ReadTx(ctx, func(tx *store.Tx) error {
		_, err := tx.TrimEvents(ctx, time.Now(), 0, 10)
		return err
	})
	if err == nil {
		t.Fatal("trim in a read-only transaction succeeded")
	}
}

// testEventsTrimAll: trimming every event keeps the counter: the next
// event is numbered on, and a reader at the head reads on.
func testEventsTrimAll(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	for i := range 3 {
		e.mustPut(t, ctx, "logs", fmt.Sprintf("r%d", i), `{}`)
	}
	if n, err := e.trim(ctx, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), 0, 100); err != nil || n != 3 {
		t.Fatalf("trim all: %d, %v", n, err)
	}
	evs, head, err := e.events(ctx, 3, 10)
	if err != nil || len(evs) != 0 || head != 3 {
		t.Fatalf("at the head after trimming all: %v, head %d, %v", evs, head, err)
	}
	if _, _, err := e.events(ctx, 2, 10); !errors.Is(err, store.ErrEventsExpired) {
		t.Fatalf("behind the head after trimming all: %v, want ErrEventsExpired", err)
	}
	e.mustPut(t, ctx, "logs", "r3", `{}`)
	if got := eventLines(e.allEvents(t, ctx, 3)); got != "4 acme logs/r3 create v1" {
		t.Fatalf("after trimming all, the next event: %q", got)
	}
}
