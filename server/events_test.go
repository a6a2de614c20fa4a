package server_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func TestEventsFollowTheTenantsWrites(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := feedEnv(t, server.Options{})
			admin := e.tenantWithKey("acme", mode)
			reader, _ := e.createKey("acme", "reader")
			e.write(admin, "notes", "before", `{"n":0}`) // before the stream: not delivered
			s, r := e.openStream(reader, "")
			if s == nil {
				t.Fatalf("a reader's stream was refused: %d %s", r.status, r.body)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			e.write(admin, "notes", "n1", `{"n":1}`)
			e.write(admin, "notes", "n1", `{"n":2}`)
			want(t, e.req("DELETE", "/v1/collections/notes/records/n1", admin, nil), 204, "")
			ops := []store.Op{store.OpCreate, store.OpUpdate, store.OpDelete}
			for i, op := range ops {
				ev := s.next(t)
				if ev.name != "change" || ev.id == "" {
					t.Fatalf("event %d: name %q id %q, want change and a position", i, ev.name, ev.id)
				}
				if ev.ev.Seq != int64(i+2) || ev.ev.Op != op || ev.ev.ID != "n1" || ev.ev.Collection != "notes" ||
					ev.ev.Tenant.String() != "acme" || ev.ev.Version != int64(min(i+1, 2)) {
					t.Fatalf("event %d = %s, want seq %d op %s of notes/n1", i, ev.raw, i+2, op)
				}
			}
		})
	}
}

func TestEventsResumeWithoutGapOrDuplicate(t *testing.T) {
	e := feedEnv(t, server.Options{})
	tok := e.tenantWithKey("acme", "pooled")
	const total = 120
	writes := make(chan error, 1)
	s, _ := e.openStream(tok, "")
	go func() { // writes go on through every reconnect
		for i := range total {
			r := e.req("PUT", fmt.Sprintf("/v1/collections/notes/records/r%d", i), tok, `{"x":1}`)
			if r.status != 201 {
				writes <- fmt.Errorf("write %d: %d %s", i, r.status, r.body)
				return
			}
		}
		writes <- nil
	}()
	var seqs []int64
	last := ""
	for round := 0; len(seqs) < total; round++ {
		if round > 0 { // reconnect after the last id, alternately by header and by query
			if round%2 == 1 {
				s, _ = e.openStream(tok, "", "Last-Event-ID", last)
			} else {
				s, _ = e.openStream(tok, "after="+last)
			}
			if s == nil {
				t.Fatalf("reconnect %d was refused", round)
			}
		}
		for range min(17, total-len(seqs)) {
			ev := s.next(t)
			seqs = append(seqs, ev.ev.Seq)
			last = ev.id
		}
		s.close()
	}
	if err := <-writes; err != nil {
		t.Fatal(err)
	}
	for i, seq := range seqs {
		if seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: a gap or a duplicate across reconnects (%v)", i, seq, seqs)
		}
	}
}

func TestEventsCollectionsFilterAndReplay(t *testing.T) {
	e := feedEnv(t, server.Options{})
	tok := e.tenantWithKey("acme", "database")
	e.write(tok, "notes", "a", `{}`)
	e.write(tok, "tasks", "b", `{}`)
	e.write(tok, "other", "c", `{}`)
	s, _ := e.openStream(tok, "from=oldest&collections=tasks,notes")
	e.write(tok, "other", "d", `{}`)
	e.write(tok, "tasks", "e", `{}`)
	for _, want := range []string{"notes/a", "tasks/b", "tasks/e"} {
		ev := s.next(t)
		if got := ev.ev.Collection + "/" + ev.ev.ID; got != want {
			t.Fatalf("got %s, want %s (the filter lets through only notes and tasks, in order)", got, want)
		}
	}
	// Replayed from the oldest event, unfiltered: all five, in order.
	all, _ := e.openStream(tok, "from=oldest")
	for i := range 5 {
		if ev := all.next(t); ev.ev.Seq != int64(i+1) {
			t.Fatalf("replay event %d has seq %d", i, ev.ev.Seq)
		}
	}
}

func TestEventsRefuseBadRequests(t *testing.T) {
	e := feedEnv(t, server.Options{})
	tok := e.tenantWithKey("acme", "pooled")
	e.write(tok, "notes", "a", `{}`)
	s, _ := e.openStream(tok, "from=oldest")
	pos := s.next(t).id
	cases := []struct {
		name, query string
		hdr         []string
		status      int
		code        string
	}{
		{"an invalid collection", "collections=notes,Bad", nil, 400, "invalid_collection"},
		{"an empty collection", "collections=notes,", nil, 400, "invalid_collection"},
		{"an unknown parameter", "tenant=globex", nil, 400, "invalid_query"},
		{"after and from together", "after=" + pos + "&from=oldest", nil, 400, "invalid_query"},
		{"from other than oldest", "from=newest", nil, 400, "invalid_query"},
		{"after twice", "after=" + pos + "&after=" + pos, nil, 400, "invalid_query"},
		{"a forged position", "after=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nil, 400, "invalid_event_position"},
		{"a truncated position", "after=" + pos[:len(pos)-3], nil, 400, "invalid_event_position"},
		{"a position with a flipped character", "after=" + flipChar(pos, 10), nil, 400, "invalid_event_position"},
		{"a bare seq", "after=1", nil, 400, "invalid_event_position"},
		{"a forged Last-Event-ID", "", []string{"Last-Event-ID", "1"}, 400, "invalid_event_position"},
		{"a Last-Event-ID with control characters", "", []string{"Last-Event-ID", pos[:20] + "\t" + pos[21:]}, 400, "invalid_event_position"},
		{"two Last-Event-IDs", "", []string{"Last-Event-ID", pos, "Last-Event-ID", pos}, 400, "invalid_query"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, r := e.on(t).openStream(tok, c.query, c.hdr...)
			if s != nil {
				t.Fatal("the stream was opened")
			}
			want(t, r, c.status, c.code)
		})
	}
	t.Run("no credential", func(t *testing.T) {
		_, r := e.on(t).openStream("", "")
		want(t, r, 401, "unauthenticated")
	})
	t.Run("the operator token", func(t *testing.T) {
		_, r := e.on(t).openStream(e.op, "")
		want(t, r, 403, "forbidden")
	})
	t.Run("a position after the tenant's last event", func(t *testing.T) {
		beyond, err := e.srv.EventPosition(context.Background(), tenant.MustParse("acme"), 99)
		if err != nil {
			t.Fatal(err)
		}
		_, r := e.on(t).openStream(tok, "after="+beyond)
		want(t, r, 400, "invalid_event_position")
	})
}

func flipChar(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestEventsTrimmedPositionIsGone(t *testing.T) {
	e := feedEnv(t, server.Options{})
	tok := e.tenantWithKey("acme", "pooled")
	s, _ := e.openStream(tok, "")
	for i := range 5 {
		e.write(tok, "notes", fmt.Sprint(i), `{}`)
	}
	first := s.next(t).id
	s.close()
	if err := e.srv.TrimEventsNow(context.Background(), tenant.MustParse("acme"), 2); err != nil {
		t.Fatal(err)
	}
	_, r := e.openStream(tok, "", "Last-Event-ID", first)
	want(t, r, 410, "events_expired")
	// from=oldest starts at what the outbox still holds.
	o, _ := e.openStream(tok, "from=oldest")
	if ev := o.next(t); ev.ev.Seq != 4 {
		t.Fatalf("from=oldest after trimming to 2 starts at seq %d, want 4", ev.ev.Seq)
	}
}

// TestEventsNeverCrossTenants: two tenants with the same collections and
// record ids, in both modes, written at the same time; every event each
// stream delivers is its own tenant's, and each gets all of its own.
func TestEventsNeverCrossTenants(t *testing.T) {
	e := feedEnv(t, server.Options{})
	toks := map[string]string{"acme": e.tenantWithKey("acme", "pooled"), "globex": e.tenantWithKey("globex", "pooled"),
		"initech": e.tenantWithKey("initech", "database")}
	streams := map[string]*sseStream{}
	for id, tok := range toks {
		streams[id], _ = e.openStream(tok, "")
	}
	const n = 30
	done := make(chan error, len(toks))
	for _, tok := range toks {
		go func() {
			for i := range n {
				if r := e.req("PUT", fmt.Sprintf("/v1/collections/shared/records/r%d", i), tok, `{"v":1}`); r.status != 201 {
					done <- fmt.Errorf("%d %s", r.status, r.body)
					return
				}
			}
			done <- nil
		}()
	}
	for range toks {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	cross := 0
	for id, s := range streams {
		for i := range n {
			ev := s.next(t)
			if ev.ev.Tenant.String() != id {
				cross++
				t.Errorf("%s's stream delivered an event of %s: %s", id, ev.ev.Tenant, ev.raw)
			}
			if ev.ev.Seq != int64(i+1) {
				t.Fatalf("%s's event %d has seq %d", id, i, ev.ev.Seq)
			}
		}
	}
	if cross != 0 {
		t.Fatalf("%d cross-tenant deliveries", cross)
	}
	// A position of acme's is refused on globex's stream (the seq exists
	// there too).
	acmePos, err := e.srv.EventPosition(context.Background(), tenant.MustParse("acme"), 3)
	if err != nil {
		t.Fatal(err)
	}
	_, r := e.openStream(toks["globex"], "", "Last-Event-ID", acmePos)
	want(t, r, 400, "invalid_event_position")
	// An act-as header does not move a tenant key's stream to another tenant.
	_, r = e.openStream(toks["globex"], "", "Bulkhead-Act-As-Tenant", "acme")
	want(t, r, 403, "forbidden")
}

// TestEventsDeletedTenant: the stream of a deleted tenant ends, and a
// tenant created again with the same id refuses the old tenant's
// positions (its seqs start at 1 again: the old position would name one
// of the new tenant's events).
func TestEventsDeletedTenant(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := feedEnv(t, server.Options{})
			tok := e.tenantWithKey("acme", mode)
			s, _ := e.openStream(tok, "")
			for i := range 3 {
				e.write(tok, "notes", fmt.Sprint(i), `{}`)
			}
			var old string
			for range 3 {
				old = s.next(t).id
			}
			want(t, e.req("DELETE", "/v1/admin/tenants/acme", e.op, nil), 204, "")
			s.ended(t)
			tok2 := e.tenantWithKey("acme", mode)
			for i := range 5 {
				e.write(tok2, "notes", fmt.Sprint(i), `{"new":true}`)
			}
			_, r := e.openStream(tok2, "", "Last-Event-ID", old)
			want(t, r, 400, "invalid_event_position")
			_, r = e.openStream(tok2, "after="+old)
			want(t, r, 400, "invalid_event_position")
			_, r = e.openStream(tok, "")
			want(t, r, 401, "unauthenticated")
		})
	}
}

func TestEventsStreamEndsWhenItsKeyIsRevokedOrTheTenantSuspended(t *testing.T) {
	e := feedEnv(t, server.Options{})
	admin := e.tenantWithKey("acme", "pooled")
	reader, keyID := e.createKey("acme", "reader")
	s, _ := e.openStream(reader, "")
	other, _ := e.openStream(admin, "")
	want(t, e.req("DELETE", "/v1/admin/tenants/acme/keys/"+keyID, e.op, nil), 204, "")
	s.ended(t)
	e.write(admin, "notes", "a", `{}`)
	if ev := other.next(t); ev.ev.ID != "a" {
		t.Fatalf("the admin key's stream got %s", ev.raw)
	}
	want(t, e.req("POST", "/v1/admin/tenants/acme/suspend", e.op, nil), 200, "")
	other.ended(t)
}

func TestEventsStreamLimits(t *testing.T) {
	e := feedEnv(t, server.Options{EventsMaxStreams: 2, EventsMaxStreamsTotal: 3})
	acme, globex := e.tenantWithKey("acme", "pooled"), e.tenantWithKey("globex", "pooled")
	a1, _ := e.openStream(acme, "")
	if s, r := e.openStream(acme, ""); s == nil {
		t.Fatalf("second stream refused: %d %s", r.status, r.body)
	}
	_, r := e.openStream(acme, "")
	want(t, r, 429, "too_many_streams")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 too_many_streams without Retry-After")
	}
	if s, r := e.openStream(globex, ""); s == nil {
		t.Fatalf("globex was refused for acme's streams: %d %s", r.status, r.body)
	}
	_, r = e.openStream(globex, "")
	want(t, r, 503, "overloaded")
	a1.close()
	// The closed stream's place is free once its handler has returned.
	for i := 0; ; i++ {
		s, r := e.openStream(acme, "")
		if s != nil {
			break
		}
		if (r.code() != "too_many_streams" && r.code() != "overloaded") || i == 1000 {
			t.Fatalf("after closing a stream: %d %s", r.status, r.body)
		}
	}
	// Open streams hold no admission slot: more streams than the
	// admission cap leave requests answered (the tenant's own included).
	want(t, e.req("GET", "/v1/collections", acme, nil), 200, "")
}

func TestEventsHeartbeat(t *testing.T) {
	e := feedEnv(t, server.Options{EventsHeartbeat: 20 * 1e6}) // 20ms
	tok := e.tenantWithKey("acme", "pooled")
	s, _ := e.openStream(tok, "")
	select {
	case <-s.pings:
	case <-s.done:
		t.Fatalf("the stream ended: %v", s.err)
	case <-timeAfter(waitFor):
		t.Fatal("no ': ping' comment")
	}
}
