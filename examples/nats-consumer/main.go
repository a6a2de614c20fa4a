// Command nats-consumer follows one tenant's Bulkhead events on NATS
// JetStream and prints them, one line each. Its NATS user needs only the
// permissions docs/nats.md gives a tenant:
//
//	NATS_URL=nats://acme:change-me-acme@127.0.0.1:4222 TENANT=acme go run ./examples/nats-consumer
//
// STREAM (default BULKHEAD_EVENTS) and PREFIX (default bulkhead) name the
// stream and the subjects' prefix; MAX=n stops after n events.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nats-consumer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string, out io.Writer) error {
	id, err := tenant.Parse(getenv("TENANT"))
	if err != nil {
		return fmt.Errorf("TENANT: %w", err)
	}
	stream, prefix := or(getenv("STREAM"), "BULKHEAD_EVENTS"), or(getenv("PREFIX"), "bulkhead")
	limit := -1
	if s := getenv("MAX"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			return fmt.Errorf("MAX must be a positive number, not %q", s)
		}
	}
	// Replies come to an inbox prefix of the tenant's own: its NATS user
	// may subscribe to nothing else.
	nc, err := nats.Connect(or(getenv("NATS_URL"), nats.DefaultURL), nats.CustomInboxPrefix("_INBOX_"+id.String()))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	seen := 0
	return Follow(ctx, js, stream, prefix, id, func(ev store.Event) error {
		fmt.Fprintf(out, "%d %s %s/%s v%d\n", ev.Seq, ev.Op, ev.Collection, ev.ID, ev.Version)
		if seen++; seen == limit {
			return errStop
		}
		return nil
	})
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
