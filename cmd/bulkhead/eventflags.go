package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/bulkhead-dev/bulkhead/server"
)

// eventFlags are serve's flags of the change feed (GET /v1/events).
type eventFlags struct {
	maxStreams, maxTotal int
	poll, heartbeat      time.Duration
	writeTimeout         time.Duration
}

func (f *eventFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&f.maxStreams, "events-max-streams", server.DefaultEventsMaxStreams,
		"open GET /v1/events streams per tenant on this instance; more get 429 too_many_streams")
	fs.IntVar(&f.maxTotal, "events-max-streams-total", server.DefaultEventsMaxStreamsTotal,
		"open GET /v1/events streams of all tenants on this instance; more get 503 overloaded")
	fs.DurationVar(&f.poll, "events-poll-interval", 0,
		"how often an open stream reads its tenant's outbox without a wake-up, so that commits of other instances on the same PostgreSQL arrive within it; 0: 1s on PostgreSQL, none on SQLite; negative: none")
	fs.DurationVar(&f.heartbeat, "events-heartbeat", server.DefaultEventsHeartbeat,
		"pause between ': ping' comments on an idle event stream")
	fs.DurationVar(&f.writeTimeout, "events-write-timeout", server.DefaultEventsWriteTimeout,
		"how long a write to an event stream may take; a client that reads nothing for that long is dropped")
}

func (f *eventFlags) check() error {
	switch {
	case f.maxStreams < 1:
		return fmt.Errorf("--events-max-streams must be at least 1, got %d", f.maxStreams)
	case f.maxTotal < 1:
		return fmt.Errorf("--events-max-streams-total must be at least 1, got %d", f.maxTotal)
	case f.heartbeat <= 0:
		return fmt.Errorf("--events-heartbeat must be positive, got %s", f.heartbeat)
	case f.writeTimeout <= 0:
		return fmt.Errorf("--events-write-timeout must be positive, got %s", f.writeTimeout)
	}
	return nil
}

func (f *eventFlags) apply(o *server.Options) {
	o.EventsMaxStreams, o.EventsMaxStreamsTotal = f.maxStreams, f.maxTotal
	o.EventsPollInterval, o.EventsHeartbeat, o.EventsWriteTimeout = f.poll, f.heartbeat, f.writeTimeout
}
