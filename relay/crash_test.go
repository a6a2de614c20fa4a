package relay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/relay"
	"github.com/bulkhead-dev/bulkhead/sched"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// The crash test runs its relay in child processes: the test binary
// itself, started again with crashChildEnv set (see TestMain).
const crashChildEnv = "BULKHEAD_RELAY_CRASH_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(crashChildEnv); mode != "" {
		os.Exit(crashChild(mode))
	}
	os.Exit(m.Run())
}

// TestCrashBetweenCommitAndPublish is the done-when: a process
// killed (SIGKILL) after committing events but before publishing them
// publishes them once after its restart; and one killed after JetStream
// acknowledged a batch but before it saved its position publishes that
// batch again on restart, which JetStream drops as duplicates (msg ids):
// the stream holds every event exactly once.
func TestCrashBetweenCommitAndPublish(t *testing.T) {
	url := natsURL(t)
	nc := connect(t, url)
	stream, prefix := testStream(t, nc)
	dir := t.TempDir()
	fl, err := fleet.OpenSQLite(context.Background(), dir, fleet.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fl.Create(context.Background(), fleet.Spec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}
	e := &env{nc: nc, stream: stream, prefix: prefix}
	e.js = mustJetStream(t, nc)
	child := func(mode string, expect int) error {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Env = append(os.Environ(), crashChildEnv+"="+mode, "CRASH_DIR="+dir, "CRASH_NATS="+url,
			"CRASH_STREAM="+stream, "CRASH_PREFIX="+prefix, "CRASH_EXPECT="+strconv.Itoa(expect))
		err := cmd.Run()
		if out.Len() > 0 {
			t.Logf("child %s:\n%s", mode, out.String())
		}
		return err
	}
	killed := func(mode string, err error) {
		t.Helper()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("child %s: %v, want it killed", mode, err)
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child %s ended with %v, want SIGKILL", mode, err)
		}
	}

	// 1. Killed after the commit of 20 events, before any publish.
	killed("crash-before-publish", child("crash-before-publish", 0))
	if n := e.count(t); n != 0 {
		t.Fatalf("stream holds %d messages after a crash before publishing, want 0", n)
	}
	// 2. Restarted: every committed event is published, once.
	if err := child("drain", 20); err != nil {
		t.Fatalf("restart: %v", err)
	}
	checkOnce(t, e, 20)

	// 3. Killed after JetStream acknowledged a batch, before the position
	// was saved: the stream is ahead of the saved offset.
	killed("crash-after-ack", child("crash-after-ack", 0))
	if n := e.count(t); n <= 20 {
		t.Fatalf("stream holds %d messages: the crash came before any ack, so this run tests nothing", n)
	}
	if off := readOffset(t, dir); off != 20 {
		t.Fatalf("saved offset %d after the crash, want 20 (the crash came before the save)", off)
	}
	// 4. Restarted from offset 20: it publishes the acknowledged batch
	// again, and JetStream keeps one copy.
	if err := child("drain", 40); err != nil {
		t.Fatalf("restart: %v", err)
	}
	checkOnce(t, e, 40)
}

// checkOnce: the stream holds acme's events 1 to n, each exactly once.
func checkOnce(t *testing.T, e *env, n int) {
	t.Helper()
	msgs := e.messages(t)
	seen := map[int64]int{}
	for _, m := range msgs {
		seen[m.ev.Seq]++
	}
	for s := int64(1); s <= int64(n); s++ {
		if seen[s] != 1 {
			t.Fatalf("event %d is in the stream %d times, want once (%d messages)", s, seen[s], len(msgs))
		}
	}
	if len(msgs) != n {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), n)
	}
}

func readOffset(t *testing.T, dir string) int64 {
	t.Helper()
	fl, err := fleet.OpenSQLite(context.Background(), dir, fleet.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	ctx := tenant.WithID(context.Background(), tenant.MustParse("acme"))
	var off int64
	err = fl.Router().ReadTx(ctx, func(tx *store.Tx) error {
		off, err = tx.EventOffset(ctx, relay.Consumer)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return off
}

// crashChild is the child process: it opens the fleet and a relay, and in
// a crash mode writes 20 events and is killed at the hook; in "drain" it
// relays until acme's offset reaches CRASH_EXPECT and exits 0.
func crashChild(mode string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child:", err); return 1 }
	kill := func() {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sch := sched.New(sched.Options{})
	fl, err := fleet.OpenSQLite(ctx, os.Getenv("CRASH_DIR"), fleet.OpenOptions{Router: store.Config{EventsCommitted: sch.Ready}})
	if err != nil {
		return fail(err)
	}
	defer fl.Close()
	nc, err := nats.Connect(os.Getenv("CRASH_NATS"))
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	switch mode {
	case "crash-before-publish":
		relay.SetTestHooks(func(tenant.ID, []store.Event) { kill() }, nil)
	case "crash-after-ack":
		relay.SetTestHooks(nil, func(tenant.ID, int64) { kill() })
	}
	r, err := relay.New(relay.Options{Conn: nc, Store: fl.Router(), Tenants: fl.Catalog(), Scheduler: sch,
		Stream: os.Getenv("CRASH_STREAM"), SubjectPrefix: os.Getenv("CRASH_PREFIX"), BatchSize: 7, ScanInterval: -1})
	if err != nil {
		return fail(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	acme := tenant.MustParse("acme")
	tctx := tenant.WithID(ctx, acme)
	if mode != "drain" {
		err := fl.Router().Tx(tctx, func(tx *store.Tx) error {
			for i := range 20 {
				if _, _, err := tx.Put(tctx, "orders", "o"+strconv.Itoa(i)+"-"+mode, []byte(`{"i":1}`), store.IfMatch{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fail(err)
		}
		time.Sleep(60 * time.Second) // the hook kills the process long before
		return fail(errors.New("the hook did not kill the process"))
	}
	want, _ := strconv.ParseInt(os.Getenv("CRASH_EXPECT"), 10, 64)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var off int64
		err := fl.Router().ReadTx(tctx, func(tx *store.Tx) error {
			var err error
			off, err = tx.EventOffset(tctx, relay.Consumer)
			return err
		})
		if err != nil {
			return fail(err)
		}
		if off == want {
			cancel()
			if err := <-done; err != nil {
				return fail(err)
			}
			return 0
		}
	}
	return fail(fmt.Errorf("offset did not reach %d", want))
}
