package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store"
)

// sseEvent is one event as a stream delivered it.
type sseEvent struct {
	id, name string
	ev       store.Event
	raw      string
}

// sseStream is an open GET /v1/events, read by a goroutine into events.
type sseStream struct {
	res    *http.Response
	events chan sseEvent
	done   chan struct{} // closed when the stream has ended
	pings  chan struct{}
	cancel context.CancelFunc
	err    error // why it ended, once done is closed
}

// openStream opens GET /v1/events?query. A refusal is returned as a resp
// (the stream is nil).
func (e *env) openStream(token, query string, hdr ...string) (*sseStream, resp) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u := e.http.URL + "/v1/events"
	if query != "" {
		u += "?" + query
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := e.http.Client().Do(r)
	if err != nil {
		cancel()
		e.t.Fatalf("GET /v1/events: %v", err)
	}
	if res.StatusCode != http.StatusOK {
		defer cancel()
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return nil, resp{status: res.StatusCode, header: res.Header, body: b}
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		cancel()
		e.t.Fatalf("Content-Type %q, want text/event-stream", ct)
	}
	s := &sseStream{res: res, events: make(chan sseEvent, 100_000), done: make(chan struct{}), pings: make(chan struct{}, 1000), cancel: cancel}
	go s.read()
	e.t.Cleanup(s.close)
	return s, resp{status: res.StatusCode, header: res.Header}
}

func (s *sseStream) read() {
	defer close(s.done)
	defer s.res.Body.Close()
	br := bufio.NewReader(s.res.Body)
	var cur sseEvent
	var data strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.err = err
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if data.Len() > 0 {
				cur.raw = data.String()
				if err := json.Unmarshal([]byte(cur.raw), &cur.ev); err != nil {
					s.err = err
					return
				}
				s.events <- cur
			}
			cur, data = sseEvent{}, strings.Builder{}
		case line == ": ping":
			select {
			case s.pings <- struct{}{}:
			default:
			}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[len("id: "):]
		case strings.HasPrefix(line, "event: "):
			cur.name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data.WriteString(line[len("data: "):])
		}
	}
}

func (s *sseStream) close() {
	s.cancel()
	<-s.done
}

// waitFor bounds how long a test waits for something that must happen; it
// is a failure bound, never a measurement.
const waitFor = 30 * time.Second

// next returns the stream's next event.
func (s *sseStream) next(t testing.TB) sseEvent {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case <-s.done:
		select {
		case ev := <-s.events:
			return ev
		default:
		}
		t.Fatalf("the stream ended (%v) before the next event", s.err)
	case <-time.After(waitFor):
		t.Fatalf("no event within %s", waitFor)
	}
	return sseEvent{}
}

// ended waits until the stream has ended.
func (s *sseStream) ended(t testing.TB) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(waitFor):
		t.Fatalf("the stream did not end within %s", waitFor)
	}
}

// write writes a record (201 or 200).
func (e *env) write(token, collection, id, body string) {
	e.t.Helper()
	r := e.req("PUT", "/v1/collections/"+collection+"/records/"+id, token, body)
	if r.status != 200 && r.status != 201 {
		e.t.Fatalf("PUT %s/%s: %d %s", collection, id, r.status, r.body)
	}
}

// feedEnv is a server whose streams check often, so that the tests that
// wait for a check (a deleted tenant, a revoked key) are quick.
func feedEnv(t *testing.T, opts server.Options) *env {
	t.Helper()
	if opts.EventsCheckInterval == 0 {
		opts.EventsCheckInterval = 50 * time.Millisecond
	}
	opts.DisableRateLimit = true
	return newEnvIn(t, t.TempDir(), opts)
}

func timeAfter(d time.Duration) <-chan time.Time { return time.After(d) }
