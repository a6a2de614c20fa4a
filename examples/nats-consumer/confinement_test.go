package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/internal/natstest"
	"github.com/bulkhead-dev/bulkhead/relay"
	"github.com/bulkhead-dev/bulkhead/sched"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// docsConfig returns docs/nats.md's nats-server configuration, to run on
// addr with its JetStream store in dir.
func docsConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "nats.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```conf\n(.*?)```").FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("docs/nats.md has no conf block")
	}
	conf := strings.ReplaceAll(m[1], "%", "%%") // natstest.Start formats it
	for old, repl := range map[string]string{
		"listen: 127.0.0.1:4222":                          "listen: %[1]s",
		`jetstream { store_dir: "/var/lib/nats-server" }`: `jetstream { store_dir: "%[2]s" }`,
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("docs/nats.md's configuration lost %q", old)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	return conf
}

// TestConsumerIsConfinedToItsTenant runs nats-server with docs/nats.md's
// configuration and the relay as its "relay" user, then acts as tenant
// acme's user: it follows acme's events (all of them, in order, nothing
// of globex), and every way towards globex's events is refused.
func TestConsumerIsConfinedToItsTenant(t *testing.T) {
	url := natstest.Start(t, docsConfig(t))
	addr := strings.TrimPrefix(url, "nats://")
	userURL := func(user string) string { return "nats://" + user + ":change-me-" + user + "@" + addr }

	// The relay, with only its own permissions, over a fleet on SQLite.
	sch := sched.New(sched.Options{})
	fl, err := fleet.OpenSQLite(context.Background(), t.TempDir(), fleet.OpenOptions{Router: store.Config{EventsCommitted: sch.Ready}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fl.Close() })
	relayConn := natstest.Connect(t, userURL("relay"))
	r, err := relay.New(relay.Options{Conn: relayConn, Store: fl.Router(), Tenants: fl.Catalog(), Scheduler: sch, ScanInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	acme, globex := tenant.MustParse("acme"), tenant.MustParse("globex")
	for _, id := range []tenant.ID{acme, globex} {
		if _, err := fl.Create(context.Background(), fleet.Spec{ID: id.String()}); err != nil {
			t.Fatal(err)
		}
		tctx := tenant.WithID(context.Background(), id)
		err := fl.Router().Tx(tctx, func(tx *store.Tx) error {
			for _, rid := range []string{"a", "b", "c"} {
				if _, _, err := tx.Put(tctx, "orders", id.String()+"-"+rid, []byte(`{"secret":"`+id.String()+`"}`), store.IfMatch{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	js, _ := jetstream.New(relayConn)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		s, err := js.Stream(context.Background(), relay.DefaultStream)
		if err == nil && s.CachedInfo().State.Msgs == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not publish 6 events (%v)", err)
		}
	}

	// acme's user follows acme's events, as the example does.
	var out bytes.Buffer
	env := map[string]string{"NATS_URL": userURL("acme"), "TENANT": "acme", "MAX": "3"}
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	if err := run(rctx, func(k string) string { return env[k] }, &out); err != nil {
		t.Fatalf("acme's consumer: %v", err)
	}
	if got := out.String(); got != "1 create orders/acme-a v1\n2 create orders/acme-b v1\n3 create orders/acme-c v1\n" {
		t.Fatalf("acme's consumer printed:\n%s", got)
	}

	// Everything else is refused.
	violations := make(chan error, 16)
	acmeConn := natstest.Connect(t, userURL("acme"), nats.CustomInboxPrefix("_INBOX_acme"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	ajs, err := jetstream.New(acmeConn)
	if err != nil {
		t.Fatal(err)
	}
	refused := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: allowed, want refused", what)
		}
	}
	create := func(name, filter string) error {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := ajs.CreateOrUpdateConsumer(c, relay.DefaultStream, jetstream.ConsumerConfig{Durable: name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy})
		return err
	}
	refused("a consumer on globex's subjects", create("acme", "bulkhead.globex.>"))
	refused("a consumer on every tenant's subjects", create("acme", "bulkhead.>"))
	refused("an unfiltered consumer", create("acme", ""))
	refused("a consumer under globex's name", create("globex", "bulkhead.acme.>"))

	// The create subject allows acme's filter; a body asking for another
	// one is refused by the server itself.
	body, _ := json.Marshal(map[string]any{"stream_name": relay.DefaultStream,
		"config": map[string]any{"durable_name": "acme", "filter_subject": "bulkhead.globex.>", "ack_policy": "explicit"}})
	resp, err := acmeConn.Request("$JS.API.CONSUMER.CREATE.BULKHEAD_EVENTS.acme.bulkhead.acme.>", body, 2*time.Second)
	if err != nil {
		t.Fatalf("create request: %v", err)
	}
	var apiResp struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &apiResp); err != nil || apiResp.Error == nil {
		t.Fatalf("a create request whose body filters globex's subjects was accepted: %s", resp.Data)
	}

	// globex's durable consumer exists (globex follows its events); acme
	// may not pull from it.
	gctx, gcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer gcancel()
	genv := map[string]string{"NATS_URL": userURL("globex"), "TENANT": "globex", "MAX": "1"}
	if err := run(gctx, func(k string) string { return genv[k] }, &bytes.Buffer{}); err != nil {
		t.Fatalf("globex's consumer: %v", err)
	}
	_, err = acmeConn.Request("$JS.API.CONSUMER.MSG.NEXT.BULKHEAD_EVENTS.globex", []byte(`{"batch":1}`), 2*time.Second)
	refused("a pull from globex's consumer", err)
	if _, err := acmeConn.Request("$JS.API.CONSUMER.LIST.BULKHEAD_EVENTS", nil, 2*time.Second); err == nil {
		t.Error("listing the stream's consumers: allowed, want refused")
	}
	sub, err := acmeConn.SubscribeSync("bulkhead.globex.>")
	if err == nil {
		_ = acmeConn.Flush()
		_, err = sub.NextMsg(2 * time.Second)
	}
	refused("a subscription to globex's subjects", err)

	// The refusals were the server's permission checks, not timeouts alone.
	seen := 0
	for len(violations) > 0 {
		if err := <-violations; errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation") {
			seen++
		}
	}
	if seen < 5 {
		t.Errorf("the server reported %d permission violations for acme's attempts, want at least 5", seen)
	}
}
