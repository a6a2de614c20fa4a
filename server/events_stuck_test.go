package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// stuckClient opens GET /v1/events on a connection with a tiny receive
// buffer and never reads from it: once the kernel's buffers are full, the
// server's writes to it block.
func (e *env) stuckClient(token string) net.Conn {
	e.t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", e.http.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	if _, err := fmt.Fprintf(conn, "GET /v1/events HTTP/1.1\r\nHost: bulkhead\r\nAuthorization: Bearer %s\r\n\r\n", token); err != nil {
		e.t.Fatal(err)
	}
	return conn
}

// metric returns the value of the first /metrics sample matching name and
// labels (0 if none).
func (e *env) metric(t testing.TB, name, labels string) float64 {
	t.Helper()
	r := e.req("GET", "/metrics", "", nil)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\S+)$`).FindSubmatch(r.body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitMetric waits until the metric has the value.
func (e *env) waitMetric(t testing.TB, name, labels string, want float64) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for e.metric(t, name, labels) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s{%s} = %v, want %v", name, labels, e.metric(t, name, labels), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEventsStuckConsumerDelaysNoOtherTenant: a client of acme that reads
// nothing, with its server-side writes blocked, does not hold up globex's
// stream; and it is dropped once a write has waited EventsWriteTimeout.
func TestEventsStuckConsumerDelaysNoOtherTenant(t *testing.T) {
	for _, c := range []struct {
		name    string
		timeout time.Duration
	}{{"while it is stuck", time.Hour}, {"and it is dropped", 200 * time.Millisecond}} {
		t.Run(c.name, func(t *testing.T) {
			e := feedEnv(t, server.Options{EventsWriteTimeout: c.timeout})
			acme, globex := e.tenantWithKey("acme", "pooled"), e.tenantWithKey("globex", "pooled")
			e.stuckClient(acme)
			e.waitMetric(t, "bulkhead_event_streams", `tenant="acme"`, 1)
			g, _ := e.openStream(globex, "")
			// About 6 MB of acme's events: more than the kernel buffers
			// between the stuck client and the server hold.
			const rounds, per = 25, 1000
			for range rounds {
				if err := e.srv.WriteRecordsNow(context.Background(), tenant.MustParse("acme"), "bulk", per); err != nil {
					t.Fatal(err)
				}
			}
			e.write(globex, "notes", "g1", `{}`)
			if ev := g.next(t); ev.ev.ID != "g1" || ev.ev.Tenant.String() != "globex" {
				t.Fatalf("globex's stream got %s", ev.raw)
			}
			if c.timeout == time.Hour {
				// globex was served while acme's stream was open and had
				// not delivered everything: its writes were blocked.
				d := e.metric(t, "bulkhead_events_delivered_total", `tenant="acme"`)
				t.Logf("acme's stuck stream delivered %v of %d events", d, rounds*per)
				if d >= rounds*per {
					t.Fatalf("the stuck client took all %v events: the test did not block the server's writes", d)
				}
				if n := e.metric(t, "bulkhead_event_streams", `tenant="acme"`); n != 1 {
					t.Fatalf("acme's stuck stream is not open (%v)", n)
				}
				return
			}
			e.waitMetric(t, "bulkhead_event_streams", `tenant="acme"`, 0)
			if n := e.metric(t, "bulkhead_event_streams_ended_total", `reason="write"`); n != 1 {
				t.Fatalf("streams ended by a write: %v, want 1", n)
			}
		})
	}
}

// TestEventsStreamsEndAtShutdown: a graceful shutdown ends open streams
// (which never finish by themselves) instead of waiting out its grace
// period for them, and Serve returns nil.
func TestEventsStreamsEndAtShutdown(t *testing.T) {
	dir := t.TempDir()
	sv := serve(t, dir, io.Discard)
	op, _ := server.ReadOperatorToken(dir)
	want(t, call(t, "POST", sv.base+"/v1/admin/tenants", op, `{"id":"acme"}`), 201, "")
	tok := call(t, "POST", sv.base+"/v1/admin/tenants/acme/keys", op, `{"role":"reader"}`).json(t)["token"].(string)
	req, _ := http.NewRequest("GET", sv.base+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("open stream: %v %v", res, err)
	}
	defer res.Body.Close()
	sv.shutdown(t) // fails unless Serve returns nil: every request finished
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Fatalf("the stream was cut rather than ended: %v", err)
	}
}
