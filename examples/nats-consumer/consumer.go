package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// errStop ends Follow without an error (the handler had enough).
var errStop = errors.New("stop")

// Follow reads one tenant's events from the stream in order, with a
// durable pull consumer named after the tenant and filtered to
// <prefix>.<tenant>.> (what its NATS user may create: docs/nats.md), and
// calls handle for each; an event is acknowledged once handle returns nil.
// A message whose event names another tenant is refused (it cannot arrive
// through the filter, and is not trusted if it does). Follow returns when
// ctx ends, or handle's error; errStop ends it cleanly.
func Follow(ctx context.Context, js jetstream.JetStream, stream, prefix string, id tenant.ID, handle func(store.Event) error) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       id.String(),
		FilterSubject: prefix + "." + id.String() + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", id, err)
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		for m := range batch.Messages() {
			var ev store.Event
			if err := json.Unmarshal(m.Data(), &ev); err != nil {
				_ = m.Term()
				return fmt.Errorf("message %s: %w", m.Subject(), err)
			}
			if ev.Tenant != id {
				_ = m.Term()
				return fmt.Errorf("message %s holds an event of tenant %q, not %s", m.Subject(), ev.Tenant, id)
			}
			if err := handle(ev); err != nil {
				if errors.Is(err, errStop) {
					return m.DoubleAck(ctx)
				}
				_ = m.Nak()
				return err
			}
			if err := m.Ack(); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("fetch: %w", err)
		}
	}
	return nil
}
