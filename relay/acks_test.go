package relay_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestRefusedMessagesArePublishedAgain: JetStream refuses part of a batch
// (the stream is full and discards new messages). The batch fails at its
// acks, the tenant is rewound to its last acknowledged event and tried
// again; once the stream takes messages, every event arrives once and in
// order (the copies of events already stored are dropped by their msg
// ids), and the saved position is the last event.
func TestRefusedMessagesArePublishedAgain(t *testing.T) {
	e := newEnv(t)
	cfg := jetstream.StreamConfig{Name: e.stream, Subjects: []string{e.prefix + ".>"}, Storage: jetstream.FileStorage,
		MaxMsgs: 5, Discard: jetstream.DiscardNew, Duplicates: 2 * time.Minute}
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	if _, err := e.js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	acme := e.create(t, "acme", "")
	var logs syncBuffer
	opts := e.options()
	opts.BatchSize = 4
	opts.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	e.run(t, opts)
	e.write(t, acme, "orders", 10)

	waitFor(t, "a refused batch", func() bool { return metric(t, e, "bulkhead_relay_errors_total", "acme") >= 1 })
	if got := e.count(t); got != 5 {
		t.Fatalf("the full stream holds %d messages, want 5", got)
	}
	if off := e.offset(t, acme); off > 4 {
		t.Fatalf("offset saved at %d, beyond the last batch acknowledged in full (4)", off)
	}
	if !strings.Contains(logs.String(), "batch not acknowledged") {
		t.Fatalf("no warning of the refused batch in the log:\n%s", logs.String())
	}

	cfg.MaxMsgs = -1
	if _, err := e.js.UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event published", func() bool { return e.offset(t, acme) == 10 })
	e.wantEventsOnceInOrder(t, 10)
	if got := metric(t, e, "bulkhead_relay_published_total", "acme"); got != 10 {
		t.Fatalf("bulkhead_relay_published_total{tenant=acme} = %v, want 10", got)
	}
}
