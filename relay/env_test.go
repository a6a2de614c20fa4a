package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/relay"
	"github.com/bulkhead-dev/bulkhead/sched"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// env is a fleet on SQLite in a temporary directory whose commits wake a
// scheduler, and a stream of the test's own on the shared NATS.
type env struct {
	fl             *fleet.Fleet
	sch            *sched.Scheduler
	nc             *nats.Conn
	js             jetstream.JetStream
	stream, prefix string
	reg            *prometheus.Registry
}

func newEnv(t testing.TB) *env {
	t.Helper()
	url := natsURL(t)
	return openEnv(t, t.TempDir(), url, "", "")
}

// openEnv opens the fleet in dir; stream and prefix "" make new ones.
func openEnv(t testing.TB, dir, url, stream, prefix string) *env {
	t.Helper()
	e := &env{sch: sched.New(sched.Options{}), reg: prometheus.NewRegistry()}
	e.nc = connect(t, url)
	var err error
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	e.stream, e.prefix = stream, prefix
	if stream == "" {
		e.stream, e.prefix = testStream(t, e.nc)
	}
	e.fl, err = fleet.OpenSQLite(context.Background(), dir, fleet.OpenOptions{Router: store.Config{EventsCommitted: e.sch.Ready}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.fl.Close() })
	return e
}

func (e *env) create(t testing.TB, id, mode string) tenant.ID {
	t.Helper()
	spec := fleet.Spec{ID: id}
	if mode != "" {
		spec.Isolation = &mode
	}
	if _, err := e.fl.Create(context.Background(), spec); err != nil {
		t.Fatalf("create tenant %s: %v", id, err)
	}
	return tenant.MustParse(id)
}

// write commits n records of tenant id in collection, in one transaction.
func (e *env) write(t testing.TB, id tenant.ID, collection string, n int) {
	t.Helper()
	ctx := tenant.WithID(context.Background(), id)
	err := e.fl.Router().Tx(ctx, func(tx *store.Tx) error {
		for i := range n {
			data := fmt.Sprintf(`{"n":%d,"pad":"%032d"}`, i, i)
			if _, _, err := tx.Put(ctx, collection, "r"+strconv.Itoa(i)+"-"+unique(), []byte(data), store.IfMatch{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("write %d records of %s: %v", n, id, err)
	}
}

// offset reads the relay's saved position of tenant id.
func (e *env) offset(t testing.TB, id tenant.ID) int64 {
	t.Helper()
	ctx := tenant.WithID(context.Background(), id)
	var off int64
	err := e.fl.Router().ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		off, err = tx.EventOffset(ctx, relay.Consumer)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return off
}

func (e *env) options() relay.Options {
	m, _ := relay.NewMetrics(e.reg, func(id string) string { return id })
	return relay.Options{Conn: e.nc, Store: e.fl.Router(), Tenants: e.fl.Catalog(), Stream: e.stream,
		SubjectPrefix: e.prefix, Scheduler: e.sch, Metrics: m, ScanInterval: -1}
}

// run starts a relay with opts until the test ends or stop is called.
func (e *env) run(t testing.TB, opts relay.Options) (stop func()) {
	t.Helper()
	r, err := relay.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.EnsureStream(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("relay: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// wantEventsOnceInOrder fails unless the stream holds exactly events 1 to
// n of one tenant, each once, in order.
func (e *env) wantEventsOnceInOrder(t testing.TB, n int) {
	t.Helper()
	msgs := e.messages(t)
	if len(msgs) != n {
		t.Fatalf("stream holds %d messages, want %d (each event once)", len(msgs), n)
	}
	for i, m := range msgs {
		if m.ev.Seq != int64(i+1) {
			t.Fatalf("message %d holds event %d (order or once broken)", i+1, m.ev.Seq)
		}
	}
}

// msg is one message of the stream, decoded.
type msg struct {
	seq     uint64 // in the stream
	subject string
	id      string // Nats-Msg-Id
	tenant  string
	evSeq   string // Bulkhead-Seq header
	ev      store.Event
}

// messages reads every message of the stream.
func (e *env) messages(t testing.TB) []msg {
	t.Helper()
	ctx, cancel := contextWithTimeout(30 * time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []msg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var ev store.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("message %d: body is not an event: %v", seq, err)
		}
		out = append(out, msg{seq: seq, subject: m.Subject, id: m.Header.Get(jetstream.MsgIDHeader),
			tenant: m.Header.Get(relay.HeaderTenant), evSeq: m.Header.Get(relay.HeaderSeq), ev: ev})
	}
	return out
}

// count returns the stream's message count.
func (e *env) count(t testing.TB) uint64 {
	t.Helper()
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, e.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// waitFor polls cond until it holds; the deadline only bounds a hung test.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
