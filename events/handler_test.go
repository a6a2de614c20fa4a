package events_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/events"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

// feed is a Handler behind a real gate on a temporary SQLite store whose
// router wakes nobody (no EventsCommitted): streams see commits by
// polling, or when the test calls Hub.Notify itself.
func feed(t *testing.T, poll time.Duration) (*tenanttest.Env, *events.Handler, *httptest.Server) {
	t.Helper()
	env := tenanttest.New(t, tenanttest.Options{})
	gate, err := ingress.New(ingress.Config{Authenticator: env.Authenticator("reader")})
	if err != nil {
		t.Fatal(err)
	}
	h := &events.Handler{Router: env.Router, Hub: events.NewHub(events.HubOptions{}), Positions: positions(t, 7), PollInterval: poll}
	srv := httptest.NewServer(gate.Data("event.read", h))
	t.Cleanup(srv.Close)
	return env, h, srv
}

// follow opens a stream with token and sends each event's JSON on the
// returned channel.
func follow(t *testing.T, srv *httptest.Server, token string) <-chan store.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	ch := make(chan store.Event, 100)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		defer close(ch)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev store.Event
				if json.Unmarshal([]byte(data), &ev) == nil {
					ch <- ev
				}
			}
		}
	}()
	return ch
}

func write(t *testing.T, env *tenanttest.Env, ctx context.Context, ids ...string) {
	t.Helper()
	err := env.Router.Tx(ctx, func(tx *store.Tx) error {
		for _, id := range ids {
			if _, _, err := tx.Put(ctx, "notes", id, []byte(`{}`), store.IfMatch{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func expect(t *testing.T, ch <-chan store.Event, id tenant.ID, ids ...string) {
	t.Helper()
	for _, want := range ids {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("the stream ended before %s", want)
			}
			if ev.ID != want || ev.Tenant != id {
				t.Fatalf("got %s/%s, want %s/%s", ev.Tenant, ev.ID, id, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no event %s", want)
		}
	}
}

func TestStreamsSeeCommitsByPolling(t *testing.T) {
	env, _, srv := feed(t, 20*time.Millisecond)
	ctx := env.Tenant(t, "acme", store.Pooled)
	ch := follow(t, srv, tenanttest.Token(ctx))
	write(t, env, ctx, "a", "b")
	expect(t, ch, tenant.MustParse("acme"), "a", "b")
}

func TestStreamsSeeCommitsWhenTheHubWakesThem(t *testing.T) {
	env, h, srv := feed(t, -1) // no polling
	acmeCtx := env.Tenant(t, "acme", store.Pooled)
	globexCtx := env.Tenant(t, "globex", store.Database)
	acme, globex := tenant.MustParse("acme"), tenant.MustParse("globex")
	a, g := follow(t, srv, tenanttest.Token(acmeCtx)), follow(t, srv, tenanttest.Token(globexCtx))
	for h.Hub.Open(acme) != 1 || h.Hub.Open(globex) != 1 { // both streams subscribed
		time.Sleep(time.Millisecond)
	}
	write(t, env, acmeCtx, "a1")
	write(t, env, globexCtx, "g1")
	h.Hub.Notify(globex)
	expect(t, g, globex, "g1")
	select {
	case ev := <-a:
		t.Fatalf("acme's stream got %s/%s without a wake-up or a poll", ev.Tenant, ev.ID)
	default:
	}
	h.Hub.Notify(acme)
	expect(t, a, acme, "a1")
}

// Example_library: the change feed in a team's own service, behind the
// ingress gate (which puts the credential's tenant in the context).
func Example_library() {
	var router *store.Router // the service's router, made with EventsCommitted: hub.Notify
	var gate *ingress.Gate
	hub := events.NewHub(events.HubOptions{MaxPerTenant: 8})
	pos, err := events.NewPositions(make([]byte, 32)) // use a random, secret key
	if err != nil {
		panic(err)
	}
	h := &events.Handler{Router: router, Hub: hub, Positions: pos}
	mux := http.NewServeMux()
	mux.Handle("GET /events", gate.Data("event.read", h))
	fmt.Println(h.Hub.Total())
	// Output: 0
}

// TestStreamsSharingReadsMissNoCommit: ten streams of one tenant share
// their reads; with no polling, each must still get every commit, in
// order. (A stream that joined a read begun before the commit it was
// woken for would miss it until the next commit; this test catches that
// only when it happens at the last commit, so it rarely does: the
// generation in readKey is what rules it out.)
func TestStreamsSharingReadsMissNoCommit(t *testing.T) {
	env, h, srv := feed(t, -1)
	ctx := env.Tenant(t, "acme", store.Pooled)
	acme := tenant.MustParse("acme")
	var streams []<-chan store.Event
	for range 10 {
		streams = append(streams, follow(t, srv, tenanttest.Token(ctx)))
	}
	for h.Hub.Open(acme) != 10 {
		time.Sleep(time.Millisecond)
	}
	const n = 100
	for i := range n {
		write(t, env, ctx, fmt.Sprintf("r%03d", i))
		h.Hub.Notify(acme) // as store.Config.EventsCommitted does after each commit
	}
	for _, s := range streams {
		for i := range n {
			select {
			case ev := <-s:
				if ev.Seq != int64(i+1) {
					t.Fatalf("event %d has seq %d", i, ev.Seq)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("a stream is stuck after %d of %d events: it missed a commit", i, n)
			}
		}
	}
}

// TestAStreamNeverReadsALaterIncarnation: a tenant deleted and created
// again between two of a stream's reads (before any periodic check) ends
// the stream; the new tenant's events never reach it.
func TestAStreamNeverReadsALaterIncarnation(t *testing.T) {
	env, h, srv := feed(t, -1)
	h.CheckInterval = time.Hour
	var born atomic.Int64 // the tenant's incarnation, as a catalog would keep it
	born.Store(1)
	h.Incarnation = func(context.Context, tenant.ID) (time.Time, error) { return time.UnixMicro(born.Load()), nil }
	ctx := env.Tenant(t, "acme", store.Pooled)
	acme := tenant.MustParse("acme")
	ch := follow(t, srv, tenanttest.Token(ctx))
	for h.Hub.Open(acme) != 1 {
		time.Sleep(time.Millisecond)
	}
	write(t, env, ctx, "old")
	h.Hub.Notify(acme)
	expect(t, ch, acme, "old")
	born.Store(2) // deleted and created again
	write(t, env, ctx, "new")
	h.Hub.Notify(acme)
	// The stream ends without the new incarnation's event.
	for ev := range ch {
		t.Fatalf("the old incarnation's stream got %s/%s", ev.Tenant, ev.ID)
	}
}
