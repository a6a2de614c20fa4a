package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// EventData is a store.EventData over an in-memory set of tenants whose
// events carry data.
type EventData struct {
	mu   sync.Mutex
	with map[tenant.ID]bool
}

// Set says whether tenant id's events carry data.
func (d *EventData) Set(id tenant.ID, with bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.with == nil {
		d.with = map[tenant.ID]bool{}
	}
	d.with[id] = with
}

// EventData implements store.EventData.
func (d *EventData) EventData(_ context.Context, id tenant.ID) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.with[id], nil
}

// Committed returns how many committed transactions of tenant id appended
// events (the Router's EventsCommitted calls).
func (e *Env) Committed(id tenant.ID) int {
	e.committedMu.Lock()
	defer e.committedMu.Unlock()
	return e.committed[id]
}

// events reads one page of the tenant's events in a read-only transaction.
func (e *Env) events(ctx context.Context, after int64, limit int, colls ...string) (evs []store.Event, head int64, err error) {
	err = e.Router.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		evs, head, err = tx.Events(ctx, after, limit, colls)
		return err
	})
	return evs, head, err
}

// allEvents reads every event after after, page by page.
func (e *Env) allEvents(t *testing.T, ctx context.Context, after int64, colls ...string) []store.Event {
	t.Helper()
	var all []store.Event
	for {
		evs, head, err := e.events(ctx, after, 3, colls...)
		if err != nil {
			t.Fatalf("events after %d: %v", after, err)
		}
		all = append(all, evs...)
		if len(evs) < 3 {
			if len(evs) > 0 && evs[len(evs)-1].Seq > head {
				t.Fatalf("event %d is beyond the head %d", evs[len(evs)-1].Seq, head)
			}
			return all
		}
		after = evs[len(evs)-1].Seq
	}
}

func (e *Env) trim(ctx context.Context, before time.Time, keep, max int) (n int64, err error) {
	err = e.Router.Tx(ctx, func(tx *store.Tx) error {
		var err error
		n, err = tx.TrimEvents(ctx, before, keep, max)
		return err
	})
	return n, err
}

// eventLine is an event's identity for comparisons.
func eventLine(ev store.Event) string {
	s := fmt.Sprintf("%d %s %s/%s %s v%d", ev.Seq, ev.Tenant, ev.Collection, ev.ID, ev.Op, ev.Version)
	if ev.Reason != "" {
		s += " " + ev.Reason
	}
	return s
}

func eventLines(evs []store.Event) string {
	lines := make([]string, len(evs))
	for i, ev := range evs {
		lines[i] = eventLine(ev)
	}
	return strings.Join(lines, "\n")
}

// testEventsFollowChanges: every create, update and delete appends one
// event, numbered from 1 in commit order, with the record's version and the
// time the transaction stamped.
func testEventsFollowChanges(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	id := tenant.MustParse("acme")
	r1 := e.mustPut(t, ctx, "notes", "n1", `{"a":1}`)
	r2 := e.mustPut(t, ctx, "notes", "n1", `{"a":2}`)
	var created store.Record
	if err := e.Router.Tx(ctx, func(tx *store.Tx) error {
		var err error
		created, err = tx.Create(ctx, "tasks", []byte(`{"t":1}`))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.del(ctx, "notes", "n1", store.IfMatch{}); err != nil {
		t.Fatal(err)
	}
	got := e.allEvents(t, ctx, 0)
	want := strings.Join([]string{
		"1 acme notes/n1 create v1",
		"2 acme notes/n1 update v2",
		"3 acme tasks/" + created.ID + " create v1",
		"4 acme notes/n1 delete v2",
	}, "\n")
	if eventLines(got) != want {
		t.Fatalf("events:\n%s\nwant:\n%s", eventLines(got), want)
	}
	if !got[0].At.Equal(r1.UpdatedAt) || !got[1].At.Equal(r2.UpdatedAt) || !got[2].At.Equal(created.UpdatedAt) {
		t.Fatalf("event times %v %v %v, want the records' %v %v %v", got[0].At, got[1].At, got[2].At, r1.UpdatedAt, r2.UpdatedAt, created.UpdatedAt)
	}
	if got[3].At.Before(got[2].At) {
		t.Fatalf("the delete's time %v is before the write before it %v", got[3].At, got[2].At)
	}
	for _, ev := range got {
		if ev.Data != nil {
			t.Fatalf("event %d carries data %s, but the tenant did not ask for it", ev.Seq, ev.Data)
		}
	}
	// Reading on from any position gives the rest; the head is the last.
	evs, head, err := e.events(ctx, 2, store.MaxEventPage)
	if err != nil || head != 4 || eventLines(evs) != eventLines(got[2:]) {
		t.Fatalf("after 2: %s, head %d, %v", eventLines(evs), head, err)
	}
	if evs, head, err := e.events(ctx, 4, 10); err != nil || len(evs) != 0 || head != 4 {
		t.Fatalf("after the head: %v, head %d, %v", evs, head, err)
	}
	if _, _, err := e.events(ctx, 5, 10); !errors.Is(err, store.ErrEventPosition) {
		t.Fatalf("after a position beyond the head: %v, want ErrEventPosition", err)
	}
	for _, limit := range []int{0, -1, store.MaxEventPage + 1} {
		if _, _, err := e.events(ctx, 0, limit); !errors.Is(err, store.ErrInvalidLimit) {
			t.Fatalf("limit %d: %v, want ErrInvalidLimit", limit, err)
		}
	}
	if _, _, err := e.events(ctx, -1, 10); !errors.Is(err, store.ErrEventPosition) {
		t.Fatalf("negative position: %v", err)
	}
	if n := e.Committed(id); n != 4 {
		t.Fatalf("EventsCommitted called %d times for 4 committed changes", n)
	}
}

// testEventsRollback: a transaction that rolls back (an error, a panic, a
// failed precondition) leaves no event and takes its numbers back.
func testEventsRollback(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	id := tenant.MustParse("acme")
	e.mustPut(t, ctx, "notes", "n1", `{"a":1}`)
	boom := errors.New("boom")
	err := e.Router.Tx(ctx, func(tx *store.Tx) error {
		if _, _, err := tx.Put(ctx, "notes", "n2", []byte(`{}`), store.IfMatch{}); err != nil {
			return err
		}
		if err := tx.Delete(ctx, "notes", "n1", store.IfMatch{}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	func() {
		defer func() { _ = recover() }()
		_ = e.Router.Tx(ctx, func(tx *store.Tx) error {
			_, _, _ = tx.Put(ctx, "notes", "n3", []byte(`{}`), store.IfMatch{})
			panic("handler bug")
		})
	}()
	// A write refused by its precondition appends nothing, even in a
	// transaction that commits.
	if err := e.Router.Tx(ctx, func(tx *store.Tx) error {
		_, _, err := tx.Put(ctx, "notes", "n1", []byte(`{}`), store.IfMatch{Version: 9})
		if !errors.Is(err, store.ErrPrecondition) {
			return fmt.Errorf("put with a wrong version: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.mustPut(t, ctx, "notes", "n4", `{}`)
	got := eventLines(e.allEvents(t, ctx, 0))
	want := "1 acme notes/n1 create v1\n2 acme notes/n4 create v1"
	if got != want {
		t.Fatalf("events:\n%s\nwant:\n%s", got, want)
	}
	if n := e.Committed(id); n != 2 {
		t.Fatalf("EventsCommitted called %d times, want 2 (rolled-back and empty transactions do not count)", n)
	}
}

// testEventsIsolation: two tenants with the same collections and ids each
// see their own events only, numbered independently; a transaction of one
// refuses a context of the other.
func testEventsIsolation(t *testing.T, e *Env) {
	a, b := e.Tenant(t, "alpha"), e.Tenant(t, "beta")
	for i := range 3 {
		e.mustPut(t, a, "notes", fmt.Sprintf("n%d", i), `{"owner":"alpha"}`)
	}
	e.mustPut(t, b, "notes", "n0", `{"owner":"beta"}`)
	if err := e.del(b, "notes", "n0", store.IfMatch{}); err != nil {
		t.Fatal(err)
	}
	ga, gb := e.allEvents(t, a, 0), e.allEvents(t, b, 0)
	if want := "1 alpha notes/n0 create v1\n2 alpha notes/n1 create v1\n3 alpha notes/n2 create v1"; eventLines(ga) != want {
		t.Fatalf("alpha's events:\n%s\nwant:\n%s", eventLines(ga), want)
	}
	if want := "1 beta notes/n0 create v1\n2 beta notes/n0 delete v1"; eventLines(gb) != want {
		t.Fatalf("beta's events:\n%s\nwant:\n%s", eventLines(gb), want)
	}
	// beta's head is 2: alpha's third event is not a position beta has.
	if _, _, err := e.events(b, 3, 10); !errors.Is(err, store.ErrEventPosition) {
		t.Fatalf("beta reading after alpha's position 3: %v, want ErrEventPosition", err)
	}
	err := e.Router.ReadTx(a, func(tx *store.Tx) error {
		_, _, err := tx.Events(b, 0, 10, nil)
		return err
	})
	if !errors.Is(err, store.ErrTenantMismatch) {
		t.Fatalf("alpha's transaction with beta's context: %v, want ErrTenantMismatch", err)
	}
	if _, _, err := e.events(context.Background(), 0, 10); !errors.Is(err, tenant.ErrMissing) {
		t.Fatalf("events without a tenant: %v, want tenant.ErrMissing", err)
	}
}

// testEventsCollections: a reader may ask for some collections only; the
// numbers stay the tenant's.
func testEventsCollections(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	for i, c := range []string{"a", "b", "c", "a", "b", "c"} {
		e.mustPut(t, ctx, c, fmt.Sprintf("r%d", i), `{}`)
	}
	got := eventLines(e.allEvents(t, ctx, 0, "c", "a", "a"))
	want := "1 acme a/r0 create v1\n3 acme c/r2 create v1\n4 acme a/r3 create v1\n6 acme c/r5 create v1"
	if got != want {
		t.Fatalf("events of a and c:\n%s\nwant:\n%s", got, want)
	}
	if got := eventLines(e.allEvents(t, ctx, 3, "zzz")); got != "" {
		t.Fatalf("events of a collection without any: %s", got)
	}
	if _, _, err := e.events(ctx, 0, 10, "Bad Name"); !errors.Is(err, store.ErrInvalidCollection) {
		t.Fatalf("bad collection name: %v", err)
	}
}

// testEventsData: a tenant whose events carry data gets each write's data
// (opened, in a sealed Env); deletes never carry any; another tenant's
// setting is its own.
func testEventsData(t *testing.T, e *Env) {
	ctx, other := e.Tenant(t, "acme"), e.Tenant(t, "other")
	e.EventData.Set(tenant.MustParse("acme"), true)
	e.mustPut(t, ctx, "notes", "n1", `{"secret": "s3cr3t", "n": 1}`)
	e.mustPut(t, other, "notes", "n1", `{"secret":"x"}`)
	if err := e.del(ctx, "notes", "n1", store.IfMatch{}); err != nil {
		t.Fatal(err)
	}
	got := e.allEvents(t, ctx, 0)
	if len(got) != 2 || string(got[0].Data) != `{"secret":"s3cr3t","n":1}` || got[1].Data != nil {
		t.Fatalf("acme's events: %s / %+v", eventLines(got), got)
	}
	if og := e.allEvents(t, other, 0); len(og) != 1 || og[0].Data != nil {
		t.Fatalf("other's events carry data it did not ask for: %+v", og)
	}
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

// testEventsReprovision: a tenant dropped and provisioned again (the same
// id, a new incarnation) starts an empty outbox numbered from 1; nothing
// of the old one shows.
func testEventsReprovision(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	for i := range 3 {
		e.mustPut(t, ctx, "notes", fmt.Sprintf("old%d", i), `{"v":"old"}`)
	}
	p := e.PlacementOf("acme")
	e.Offboard(t, "acme")
	ctx = e.tenantAt(t, tenant.MustParse("acme"), p)
	if evs, head, err := e.events(ctx, 0, 10); err != nil || len(evs) != 0 || head != 0 {
		t.Fatalf("re-created tenant's events: %v, head %d, %v", evs, head, err)
	}
	if _, _, err := e.events(ctx, 2, 10); !errors.Is(err, store.ErrEventPosition) {
		t.Fatalf("an old incarnation's position: %v, want ErrEventPosition", err)
	}
	e.mustPut(t, ctx, "notes", "new", `{}`)
	if got := eventLines(e.allEvents(t, ctx, 0)); got != "1 acme notes/new create v1" {
		t.Fatalf("re-created tenant's events: %q", got)
	}
}

// testEventOffsets: consumers keep one position per tenant, in the
// tenant's own outbox.
func testEventOffsets(t *testing.T, e *Env) {
	a, b := e.Tenant(t, "alpha"), e.Tenant(t, "beta")
	set := func(ctx context.Context, consumer string, seq int64) error {
		return e.Router.Tx(ctx, func(tx *store.Tx) error { return tx.SetEventOffset(ctx, consumer, seq) })
	}
	get := func(ctx context.Context, consumer string) int64 {
		t.Helper()
		var seq int64
		if err := e.Router.ReadTx(ctx, func(tx *store.Tx) error {
			var err error
			seq, err = tx.EventOffset(ctx, consumer)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return seq
	}
	if get(a, "mailer") != 0 {
		t.Fatal("a consumer without a saved position is not at 0")
	}
	for _, step := range []struct {
		ctx  context.Context
		name string
		seq  int64
	}{{a, "mailer", 7}, {a, "indexer", 3}, {b, "mailer", 1}, {a, "mailer", 9}} {
		if err := set(step.ctx, step.name, step.seq); err != nil {
			t.Fatal(err)
		}
	}
	if get(a, "mailer") != 9 || get(a, "indexer") != 3 || get(b, "mailer") != 1 || get(b, "indexer") != 0 {
		t.Fatalf("offsets: alpha %d %d, beta %d %d", get(a, "mailer"), get(a, "indexer"), get(b, "mailer"), get(b, "indexer"))
	}
	for _, bad := range []string{"", "$head", "Mailer", "a b", "x\x00", strings.Repeat("a", 64)} {
		if err := set(a, bad, 1); !errors.Is(err, store.ErrInvalidConsumer) {
			t.Fatalf("consumer %q: %v, want ErrInvalidConsumer", bad, err)
		}
	}
	if err := set(a, "mailer", -1); !errors.Is(err, store.ErrEventPosition) {
		t.Fatalf("negative offset: %v", err)
	}
	// A saved offset is not an event: the tenant's numbering is untouched.
	e.mustPut(t, a, "notes", "n", `{}`)
	if got := eventLines(e.allEvents(t, a, 0)); got != "1 alpha notes/n create v1" {
		t.Fatalf("events after saving offsets: %q", got)
	}
	err := e.Router.ReadTx(a, func(tx *store.Tx) error { return tx.SetEventOffset(a, "mailer", 1) })
	if err == nil {
		t.Fatal("SetEventOffset in a read-only transaction succeeded")
	}
}

// testEventsConcurrent: concurrent writers of one tenant get gapless
// numbers, one event per committed change, and each record's events come
// in version order.
func testEventsConcurrent(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	const writers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("r%d", i%3)
				err := e.Router.Tx(ctx, func(tx *store.Tx) error {
					_, _, err := tx.Put(ctx, "c", id, []byte(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)), store.IfMatch{})
					return err
				})
				if err != nil && !errors.Is(err, store.ErrConflict) {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := e.allEvents(t, ctx, 0)
	last := map[string]int64{}
	for i, ev := range got {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has number %d: the numbers have a gap or a repeat", i+1, ev.Seq)
		}
		if ev.Version != last[ev.ID]+1 {
			t.Fatalf("event %d: %s at version %d after version %d", ev.Seq, ev.ID, ev.Version, last[ev.ID])
		}
		last[ev.ID] = ev.Version
	}
	var versions int64
	for _, id := range []string{"r0", "r1", "r2"} {
		rec, err := e.get(ctx, "c", id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Version != last[id] {
			t.Fatalf("%s is at version %d, its last event says %d", id, rec.Version, last[id])
		}
		versions += rec.Version
	}
	if int64(len(got)) != versions {
		t.Fatalf("%d events for %d committed writes", len(got), versions)
	}
}

// testEventsPurge: a retention purge appends a delete event per purged
// record, with the version it had.
func testEventsPurge(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	e.mustPut(t, ctx, "logs", "a", `{}`)
	e.mustPut(t, ctx, "logs", "a", `{"again":1}`)
	e.mustPut(t, ctx, "logs", "b", `{}`)
	keep := e.mustPut(t, ctx, "logs", "c", `{}`)
	if res := e.mustPurge(t, ctx, "logs", keep.UpdatedAt, store.MaxPurge); res.Records != 2 {
		t.Fatalf("purge: %+v", res)
	}
	got := eventLines(e.allEvents(t, ctx, 4))
	if got != "5 acme logs/a delete v2 retention\n6 acme logs/b delete v1 retention" {
		t.Fatalf("purge events:\n%s", got)
	}
}
