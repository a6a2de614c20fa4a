// Package natstest gives tests NATS: the shared server CI runs
// (BULKHEAD_TEST_NATS) or a nats-server of the test's own with a config
// (for permissions), and streams of a test's own.
package natstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// URL returns BULKHEAD_TEST_NATS (the machine's NATS with JetStream)
// or skips the test naming it.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("BULKHEAD_TEST_NATS")
	if u == "" {
		t.Skip("set BULKHEAD_TEST_NATS=nats://127.0.0.1:4222 (a nats-server with -js) to run the NATS relay tests")
	}
	return u
}

// Unique returns a fresh name part: tests share one NATS server, and two
// streams may not capture the same subjects.
func Unique() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Stream names a stream and subject prefix of the test's own, and
// deletes the stream when the test ends.
func Stream(t testing.TB, nc *nats.Conn) (stream, prefix string) {
	t.Helper()
	u := Unique()
	stream, prefix = "BHTEST_"+u, "bhtest_"+u
	t.Cleanup(func() {
		js, err := jetstream.New(nc)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = js.DeleteStream(ctx, stream)
		}
	})
	return stream, prefix
}

// Connect connects to url and closes the connection when the test ends.
func Connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect to NATS at %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Start runs a nats-server of the test's own (for permissions the
// shared server lacks) with config, on a free port, JetStream in a
// temporary directory; it returns its URL. config may use %[1]s for the
// listen address and %[2]s for the store directory.
func Start(t *testing.T, config string) string {
	t.Helper()
	URL(t) // the same service variable: CI runs nats-server
	bin := os.Getenv("BULKHEAD_NATS_SERVER")
	if bin == "" {
		bin = "/usr/sbin/nats-server"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("nats-server binary: %v (install nats-server or set BULKHEAD_NATS_SERVER)", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(config, addr, filepath.Join(dir, "js"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	log, _ := os.Create(filepath.Join(dir, "nats.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "nats.log"))
			t.Logf("nats-server log:\n%s", b)
		}
	})
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i > 200 {
			t.Fatalf("nats-server did not listen on %s", addr)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return "nats://" + addr
}
