package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/events"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ingress/catalogauth"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// The change feed: GET /v1/events (package events).

// Defaults for the change feed's options.
const (
	DefaultEventsMaxStreams      = events.DefaultMaxStreamsPerTenant
	DefaultEventsMaxStreamsTotal = events.DefaultMaxStreams
	DefaultEventsPollInterval    = events.DefaultPollInterval
	DefaultEventsCheckInterval   = events.DefaultCheckInterval
	DefaultEventsHeartbeat       = events.DefaultHeartbeat
	DefaultEventsWriteTimeout    = events.DefaultWriteTimeout
)

// eventFeed is the server's change feed: the hub the router's commits
// wake (made before the router) and the stream handler (made after).
type eventFeed struct {
	hub     *events.Hub
	handler *events.Handler
	// stopPoll stops the hub's poll (PostgreSQL); nil when none runs.
	stopPoll context.CancelFunc
	polled   chan struct{} // closed when the poll has returned
}

// stop stops the hub's poll and waits for it. Safe on a nil feed.
func (f *eventFeed) stop() {
	if f == nil || f.stopPoll == nil {
		return
	}
	f.stopPoll()
	<-f.polled
}

// newEventHub makes the feed's hub, before the router whose
// EventsCommitted it is.
func newEventHub(opts Options) *eventFeed {
	return &eventFeed{hub: events.NewHub(events.HubOptions{MaxPerTenant: opts.EventsMaxStreams, MaxTotal: opts.EventsMaxStreamsTotal})}
}

// committed is the router's store.Config.EventsCommitted: it wakes the
// tenant's change-feed streams and the NATS relay. Neither blocks.
func (s *Server) committed(id tenant.ID) {
	s.feed.hub.Notify(id)
	s.eventsCommitted(id)
}

// eventPositionKey derives the key of event positions from the cursor key
// (<data-dir>/cursor.key), so that no new secret has to be kept, and
// positions and cursors can never be taken for each other.
func eventPositionKey(cursorKey []byte) []byte {
	m := hmac.New(sha256.New, cursorKey)
	m.Write([]byte("bulkhead event positions v1"))
	return m.Sum(nil)
}

// initEvents makes the stream handler on the server's parts: the router,
// positions keyed from the cursor key and bound to the catalog's
// incarnations, a credential check at every poll (a revoked key, a
// suspended or deleted tenant ends its streams), admission given back once
// a stream has begun, and the metrics.
func (s *Server) initEvents(cursorKey []byte) error {
	pos, err := events.NewPositions(eventPositionKey(cursorKey))
	if err != nil {
		return err
	}
	m, err := events.NewMetrics(s.metrics.Registerer(), s.metrics.TenantLabel)
	if err != nil {
		return fmt.Errorf("event metrics: %w", err)
	}
	authn := catalogauth.All(s.catalog, s.opHash, s.verifier)
	poll := s.opts.EventsPollInterval
	switch {
	case poll == 0 && s.opts.PostgresURL == "":
		poll = -1 // SQLite: this process makes every commit, and each wakes the streams
	case poll == 0:
		poll = DefaultEventsPollInterval
	}
	if poll > 0 {
		// One poll for the whole hub: a tenant's streams wake together and
		// share one read, instead of one poll (and read) per stream.
		ctx, cancel := context.WithCancel(context.Background())
		s.feed.stopPoll, s.feed.polled = cancel, make(chan struct{})
		go func() {
			defer close(s.feed.polled)
			s.feed.hub.Poll(ctx, poll)
		}()
	}
	s.feed.handler = &events.Handler{
		Router:    s.router,
		Hub:       s.feed.hub,
		Positions: pos,
		Incarnation: func(ctx context.Context, id tenant.ID) (time.Time, error) {
			state, born, err := s.catalog.Incarnation(ctx, id)
			switch {
			case errors.Is(err, catalog.ErrNotFound) || err == nil && state != catalog.Active && state != catalog.Suspended:
				return born, fmt.Errorf("%w: %s", store.ErrUnknownTenant, id) // 401, as for its credential
			case err == nil && state == catalog.Suspended:
				return born, fmt.Errorf("%w: %s", catalog.ErrSuspended, id) // 403 tenant_suspended
			}
			return born, err
		},
		Check: func(r *http.Request) error {
			id, err := tenant.FromContext(r.Context())
			if err != nil {
				return err
			}
			p, err := authn.Authenticate(r.Context(), ingress.BearerToken(r))
			if err != nil {
				return err
			}
			if !p.IsTenant() || p.Tenant != id {
				return errors.New("the credential no longer speaks for the stream's tenant")
			}
			return nil
		},
		Started:       func(r *http.Request) { ingress.ReleaseAdmission(r.Context()) },
		PollInterval:  -1, // the hub polls
		CheckInterval: s.opts.EventsCheckInterval,
		Heartbeat:     s.opts.EventsHeartbeat,
		WriteTimeout:  s.opts.EventsWriteTimeout,
		Metrics:       m,
		Logger:        s.log,
	}
	return nil
}

// streamEvents: GET /v1/events — the credential's tenant's change feed.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) error {
	return s.feed.handler.Serve(w, r)
}
