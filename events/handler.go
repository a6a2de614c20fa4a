package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Defaults for Handler.
const (
	DefaultPollInterval  = time.Second
	DefaultCheckInterval = time.Second
	DefaultHeartbeat     = 15 * time.Second
	DefaultWriteTimeout  = 10 * time.Second
)

// errIncarnation: the stream's tenant was deleted (and perhaps created
// again) since the stream began.
var errIncarnation = fmt.Errorf("%w: the tenant was deleted since the stream began", store.ErrUnknownTenant)

// ContentType is the media type of a stream.
const ContentType = "text/event-stream"

// EventName is the SSE event type of a change.
const EventName = "change"

// Handler serves the change feed of the tenant in the request's context
// as server-sent events: one "event: change" per event, its JSON
// (store.Event) as data and its position as id. Put it behind a gate that
// puts the tenant in the context from the credential and authorizes the
// read (package ingress). See the package documentation for where a stream
// starts and what it guarantees.
type Handler struct {
	// Router reads the events (required).
	Router *store.Router
	// Hub wakes the stream when its tenant's events commit and counts
	// open streams against its limits (required).
	Hub *Hub
	// Positions makes and checks the ids (required).
	Positions *Positions
	// Incarnation returns the start of tenant id's current incarnation
	// (catalog.Catalog.Incarnation's time): positions are bound to it, and
	// a stream ends once it changes or fails (the tenant was deleted). Nil
	// binds positions to the tenant id alone.
	Incarnation func(ctx context.Context, id tenant.ID) (time.Time, error)
	// Check, if set, is called every CheckInterval while a stream is
	// open; an error ends the stream. A server re-authenticates the
	// request's credential here, so that a revoked key or a suspended
	// tenant stops receiving events.
	Check func(r *http.Request) error
	// CheckInterval is how often a stream calls Check and looks up its
	// tenant's incarnation (default DefaultCheckInterval).
	CheckInterval time.Duration
	// Started, if set, is called once the stream's headers are sent. A
	// server gives the request's admission slot back here
	// (ingress.ReleaseAdmission): a stream holds no slot while it waits.
	Started func(r *http.Request)
	// PollInterval is how often a stream reads the outbox even without a
	// wake-up from the Hub (default DefaultPollInterval): commits made by
	// another instance on the same database reach the stream within it.
	// A negative value turns polling off, for a store that only this
	// process writes (every commit then wakes the streams through the
	// Hub).
	PollInterval time.Duration
	// Heartbeat is the pause between two ": ping" comments (default
	// DefaultHeartbeat), which keep proxies from closing an idle stream.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to the client (default
	// DefaultWriteTimeout): a client that reads nothing for that long is
	// dropped.
	WriteTimeout time.Duration
	// PageSize is the most events read per transaction (default and
	// maximum store.MaxEventPage).
	PageSize int
	// Metrics, if set, counts streams and deliveries.
	Metrics *Metrics
	// Logger, if set, logs why streams end at debug level.
	Logger *slog.Logger

	reads  readGroup
	checks checkCache
}

// ServeHTTP answers r with Serve, and a refusal with its problem document
// (500 internal for an error that is not a *problem.Error).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.Serve(w, r); err != nil {
		var p *problem.Error
		if !errors.As(err, &p) {
			p = problem.New(http.StatusInternalServerError, "internal", "the stream could not be started")
		}
		problem.Write(w, p)
	}
}

// Serve answers r. A request it cannot serve is returned as an error
// before anything is sent: a *problem.Error for the client's mistakes and
// the limits (400 invalid_query, invalid_collection,
// invalid_event_position; 410 events_expired; 429 too_many_streams; 503
// overloaded; 501 events_unsupported), any other error as it came (the
// tenant's lookup, the store). Once the stream has begun it runs until the
// client goes away, a write times out, the tenant goes away, Check fails
// or the stream falls behind the outbox's trimming, and returns nil.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request) error {
	id, err := tenant.FromContext(r.Context())
	if err != nil {
		return err
	}
	req, err := parseRequest(r)
	if err != nil {
		return err
	}
	inc, err := h.incarnationOf(r, id)
	if err != nil {
		return err
	}
	var after int64
	if req.start == startAfter {
		if after, err = h.Positions.Decode(req.position, id, inc); err != nil {
			return invalidPosition(err)
		}
	}
	sub, err := h.Hub.Subscribe(id)
	if err != nil {
		return hubProblem(err)
	}
	defer sub.Close()
	s := &stream{h: h, r: r, w: w, id: id, inc: inc, collections: req.collections, page: h.pageSize()}
	// The first page is read before anything is sent, so that a position
	// the outbox cannot serve is an answer, not a broken stream.
	first, err := s.read(r.Context(), after, req.start)
	if err != nil {
		return storeProblem(err)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", ContentType)
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Accel-Buffering", "no") // proxies that buffer would hold events back
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	if h.Started != nil {
		h.Started(r)
	}
	// Each write moves the connection's write deadline (the server's
	// WriteTimeout would otherwise cut the stream).
	s.rc = http.NewResponseController(w)
	s.metrics = h.Metrics.stream(id.String())
	reason := s.run(sub, first)
	s.metrics.end(reason)
	return nil
}

func (h *Handler) pageSize() int {
	if h.PageSize <= 0 || h.PageSize > store.MaxEventPage {
		return store.MaxEventPage
	}
	return h.PageSize
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// stream is one open stream.
type stream struct {
	h           *Handler
	r           *http.Request
	w           http.ResponseWriter
	rc          *http.ResponseController
	id          tenant.ID
	inc         time.Time
	collections []string
	page        int
	metrics     streamMetrics
	buf         []byte
}

// batch is one read of the outbox.
type batch struct {
	evs  []store.Event
	next int64 // the position to read after next time
	full bool  // the page was full: read again at once
}

// read reads one page in a read-only transaction of the tenant, entered
// again from the stream's own tenant id.
func (s *stream) read(ctx context.Context, after int64, from start) (batch, error) {
	var b batch
	err := s.h.Router.ReadTx(tenant.WithID(ctx, s.id), func(tx *store.Tx) error {
		if from != startAfter {
			oldest, head, err := tx.EventBounds(ctx)
			if err != nil {
				return err
			}
			after = head
			if from == startOldest {
				after = oldest - 1
			}
		}
		evs, head, err := tx.Events(ctx, after, s.page, s.collections)
		if err != nil {
			return err
		}
		b = batch{evs: evs, next: head, full: len(evs) == s.page}
		if b.full {
			b.next = evs[len(evs)-1].Seq
		}
		return nil
	})
	if err != nil {
		return batch{}, err
	}
	// The tenant may have been deleted and created again since the stream
	// began: the read then found the new tenant's outbox, whose events are
	// not this stream's. Incarnations only move forward, so one unchanged
	// after the read was the read's too.
	if s.h.Incarnation != nil {
		inc, err := s.h.Incarnation(ctx, s.id)
		if err != nil {
			return batch{}, err
		}
		if !inc.Equal(s.inc) {
			return batch{}, errIncarnation
		}
	}
	for _, ev := range b.evs {
		if ev.Tenant != s.id { // the store's guarantee, checked where it counts
			return batch{}, fmt.Errorf("events: the outbox of tenant %s returned an event of another tenant", s.id)
		}
	}
	return b, nil
}

// run streams until the stream ends and returns why (a Metrics reason).
func (s *stream) run(sub *Subscription, b batch) string {
	ctx := s.r.Context()
	var poll <-chan time.Time
	if s.h.PollInterval >= 0 {
		t := time.NewTicker(orDefault(s.h.PollInterval, DefaultPollInterval))
		defer t.Stop()
		poll = t.C
	}
	every := orDefault(s.h.CheckInterval, DefaultCheckInterval)
	check := time.NewTicker(every)
	defer check.Stop()
	beat := time.NewTicker(orDefault(s.h.Heartbeat, DefaultHeartbeat))
	defer beat.Stop()
	if err := s.send(b.evs); err != nil {
		return s.ended("write", err)
	}
	for {
		if !b.full {
			select {
			case <-ctx.Done():
				return s.ended("client", ctx.Err())
			case <-sub.Done():
				return s.ended("shutdown", ErrHubClosed)
			case <-beat.C:
				if err := s.write([]byte(": ping\n\n")); err != nil {
					return s.ended("write", err)
				}
				continue
			case <-check.C:
				if err := s.sharedCheck(every); err != nil {
					return s.ended("tenant", err)
				}
				continue
			case <-poll:
			case <-sub.C():
			}
		}
		var err error
		if b, err = s.sharedRead(ctx, b.next, sub.generation()); err != nil {
			switch {
			case ctx.Err() != nil:
				return s.ended("client", err)
			case errors.Is(err, store.ErrEventsExpired):
				return s.ended("expired", err)
			case errors.Is(err, store.ErrUnknownTenant) || errors.Is(err, store.ErrEventPosition):
				return s.ended("tenant", err)
			}
			return s.ended("error", err)
		}
		if err := s.send(b.evs); err != nil {
			return s.ended("write", err)
		}
	}
}

// check ends a stream whose tenant was deleted (and perhaps created again)
// or whose credential no longer holds.
func (s *stream) check() error {
	inc, err := s.h.incarnationOf(s.r, s.id)
	if err != nil {
		return err
	}
	if !inc.Equal(s.inc) {
		return errors.New("the tenant was deleted and created again")
	}
	if s.h.Check != nil {
		return s.h.Check(s.r)
	}
	return nil
}

// send writes evs as one batch and flushes it (also when evs is empty: the
// first send flushes the headers).
func (s *stream) send(evs []store.Event) error {
	s.buf = s.buf[:0]
	for i := range evs {
		data, err := json.Marshal(&evs[i])
		if err != nil {
			return err
		}
		s.buf = append(s.buf, "id: "...)
		s.buf = append(s.buf, s.h.Positions.Encode(s.id, s.inc, evs[i].Seq)...)
		s.buf = append(s.buf, "\nevent: "+EventName+"\ndata: "...)
		s.buf = append(s.buf, data...)
		s.buf = append(s.buf, "\n\n"...)
	}
	if err := s.write(s.buf); err != nil {
		return err
	}
	s.metrics.deliver(len(evs))
	return nil
}

// write writes p and flushes it within WriteTimeout.
func (s *stream) write(p []byte) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(orDefault(s.h.WriteTimeout, DefaultWriteTimeout))) // without support: the server's own timeout
	if len(p) > 0 {
		if _, err := s.w.Write(p); err != nil {
			return err
		}
	}
	return s.rc.Flush()
}

func (s *stream) ended(reason string, err error) string {
	if s.h.Logger != nil {
		s.h.Logger.LogAttrs(context.Background(), slog.LevelDebug, "event stream ended",
			slog.String("tenant", s.id.String()), slog.String("reason", reason), slog.String("error", fmt.Sprint(err)))
	}
	return reason
}
