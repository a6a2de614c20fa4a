package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/bulkhead-dev/bulkhead/relay"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// natsRelay publishes the tenants' outbox events to NATS JetStream
// (Options.NATSURL; package relay).
type natsRelay struct {
	*relay.Relay
	conn *nats.Conn
	stop context.CancelFunc
	done chan struct{}
}

// relayPtr holds the running relay for eventsCommitted, which the router
// calls from any goroutine, also before initRelay has run.
type relayPtr = atomic.Pointer[natsRelay]

// eventsCommitted is the router's store.Config.EventsCommitted: it wakes
// the relay for the tenant (and never blocks).
func (s *Server) eventsCommitted(id tenant.ID) {
	if r := s.natsRelay.Load(); r != nil {
		r.Notify(id)
	}
}

// initRelay connects to NATS, ensures the stream and starts the relay
// when Options.NATSURL is set; the embedded default needs no NATS.
func (s *Server) initRelay(ctx context.Context) error {
	if s.opts.NATSURL == "" {
		return nil
	}
	nc, err := nats.Connect(s.opts.NATSURL, nats.Name("bulkhead relay"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s (check --nats and that nats-server runs with -js): %w", redactURL(s.opts.NATSURL), err)
	}
	m, err := relay.NewMetrics(s.metrics.Registerer(), s.metrics.TenantLabel)
	if err != nil {
		nc.Close()
		return fmt.Errorf("relay metrics: %w", err)
	}
	rl, err := relay.New(relay.Options{Conn: nc, Store: s.router, Tenants: s.catalog, Stream: s.opts.NATSStream,
		SubjectPrefix: s.opts.NATSSubjectPrefix, Weights: s.limits, Metrics: m, Logger: s.log})
	if err == nil {
		err = rl.EnsureStream(ctx)
	}
	if err != nil {
		nc.Close()
		return err
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &natsRelay{Relay: rl, conn: nc, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := rl.Run(rctx); err != nil {
			s.log.Error("nats relay stopped", slog.String("error", err.Error()))
		}
	}()
	s.natsRelay.Store(r)
	s.log.Info("relaying events to NATS JetStream", slog.String("url", redactURL(s.opts.NATSURL)))
	return nil
}

// stopRelay stops the relay (it waits for the acks of what it published
// and saves the positions) and closes the NATS connection. It is safe to
// call more than once.
func (s *Server) stopRelay() {
	r := s.natsRelay.Swap(nil)
	if r == nil {
		return
	}
	r.stop()
	<-r.done
	r.conn.Close()
}

// redactURL hides the credentials of NATS URLs (a comma-separated list;
// a user, a password or a token) in logs and errors.
func redactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "(unparsable URL)"
			continue
		}
		if u.User != nil {
			u.User = url.User("xxxxx")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
