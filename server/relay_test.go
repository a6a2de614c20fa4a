package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/natstest"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store"
)

// TestNATSRelayPublishesRecordWrites: with NATSURL the server relays a
// tenant's writes and deletes made over HTTP to its JetStream subjects,
// and counts them on /metrics under the tenant's label.
func TestNATSRelayPublishesRecordWrites(t *testing.T) {
	url := natstest.URL(t)
	nc := natstest.Connect(t, url)
	stream, prefix := natstest.Stream(t, nc)
	e := newEnvIn(t, t.TempDir(), server.Options{NATSURL: url, NATSStream: stream, NATSSubjectPrefix: prefix})
	token := e.tenantWithKey("acme", "database")
	want(t, e.req("PUT", "/v1/collections/notes/records/n1", token, `{"text":"hello"}`), 201, "")
	want(t, e.req("DELETE", "/v1/collections/notes/records/n1", token, nil), 204, "")

	js, _ := jetstream.New(nc)
	var s jetstream.Stream
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if s, err = js.Stream(context.Background(), stream); err == nil && s.CachedInfo().State.Msgs == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream did not get 2 messages (%v)", err)
		}
	}
	var ops []store.Op
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		var ev store.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if m.Subject != prefix+".acme.notes" || ev.Tenant.String() != "acme" || ev.ID != "n1" || ev.Seq != int64(seq) {
			t.Fatalf("message %d: subject %q, event %+v", seq, m.Subject, ev)
		}
		if strings.Contains(string(m.Data), "hello") {
			t.Fatal("the event carries the record's data, but the tenant's events carry none by default")
		}
		ops = append(ops, ev.Op)
	}
	if ops[0] != store.OpCreate || ops[1] != store.OpDelete {
		t.Fatalf("ops %v, want create then delete", ops)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(string(e.req("GET", "/metrics", "", nil).body), `bulkhead_relay_published_total{tenant="acme"} 2`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/metrics never showed bulkhead_relay_published_total{tenant=\"acme\"} 2")
		}
	}
}

// TestNATSUnreachableFailsOpen: a server told to relay to a NATS that
// does not answer does not start, says which flag to check, and does not
// print the URL's credentials.
func TestNATSUnreachableFailsOpen(t *testing.T) {
	_, err := server.Open(context.Background(), server.Options{DataDir: t.TempDir(), NATSURL: "nats://relay:s3cret-pw@127.0.0.1:1"})
	if err == nil {
		t.Fatal("Open succeeded with an unreachable NATS")
	}
	if !strings.Contains(err.Error(), "--nats") || strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("error %q: want the flag named and no password", err)
	}
}
