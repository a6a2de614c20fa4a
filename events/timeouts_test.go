package events_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/events"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

// TestStreamsOutliveTheServersTimeouts: an http.Server's ReadTimeout and
// WriteTimeout bound requests, not a stream: it keeps its connection (its
// deadlines moved by the handler) and delivers long after both.
func TestStreamsOutliveTheServersTimeouts(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	ctx := env.Tenant(t, "acme", store.Pooled)
	gate, err := ingress.New(ingress.Config{Authenticator: env.Authenticator("reader")})
	if err != nil {
		t.Fatal(err)
	}
	h := &events.Handler{Router: env.Router, Hub: events.NewHub(events.HubOptions{}), Positions: positions(t, 7),
		PollInterval: -1, Heartbeat: 20 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: gate.Data("event.read", h), ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })

	rctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, "GET", "http://"+ln.Addr().String(), nil)
	req.Header.Set("Authorization", "Bearer "+tenanttest.Token(ctx))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	// 25 heartbeats: at least half a second, five times both timeouts.
	for pings := 0; pings < 25; {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended after %d pings: %v", pings, err)
		}
		if line == ": ping\n" {
			pings++
		}
	}
	write(t, env, ctx, "late")
	h.Hub.Notify(tenant.MustParse("acme"))
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended before the event: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			if !strings.Contains(line, `"id":"late"`) {
				t.Fatalf("got %s", line)
			}
			return
		}
	}
}
