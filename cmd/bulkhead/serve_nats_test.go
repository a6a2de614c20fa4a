package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/natstest"
)

// TestServeRelaysToNATS starts the real binary with --nats (and the stream
// and prefix flags): it logs that it relays and creates its stream.
func TestServeRelaysToNATS(t *testing.T) {
	url := natstest.URL(t)
	nc := natstest.Connect(t, url)
	stream, prefix := natstest.Stream(t, nc)
	p := startServeProcess(t, t.TempDir(), "--nats", url, "--nats-stream", stream, "--nats-subject-prefix", prefix)
	if !strings.Contains(p.logs.String(), "relaying events to NATS JetStream") {
		t.Fatalf("serve did not log the relay; log:\n%s", p.logs.String())
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("serve did not create stream %s: %v", stream, err)
	}
	if subj := s.CachedInfo().Config.Subjects; len(subj) != 1 || subj[0] != prefix+".>" {
		t.Fatalf("stream subjects %v, want [%s.>]", subj, prefix)
	}
}
