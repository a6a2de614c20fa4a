package events

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// The query parameters and the header of a stream request.
const (
	// CollectionsParam filters the stream: a comma-separated list of
	// collection names.
	CollectionsParam = "collections"
	// AfterParam resumes after a position (the id: of an event).
	AfterParam = "after"
	// FromParam with the value FromOldest starts at the oldest event the
	// outbox still holds.
	FromParam  = "from"
	FromOldest = "oldest"
	// LastEventIDHeader is what an EventSource sends when it reconnects;
	// it wins over after and from, which the reconnecting client repeats
	// from its first request's URL.
	LastEventIDHeader = "Last-Event-ID"
)

// MaxCollections bounds the collections one stream filters on.
const MaxCollections = 64

// start says where a stream begins.
type start int

const (
	startHead   start = iota // after the tenant's last event
	startOldest              // at the oldest event kept
	startAfter               // after a position
)

// request is a parsed stream request.
type request struct {
	collections []string
	start       start
	position    string // startAfter: the position as sent
}

// parseRequest reads the query and Last-Event-ID. Every mistake is a 400
// problem: invalid_query, invalid_collection.
func parseRequest(r *http.Request) (request, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return request{}, badQuery("the query string is malformed")
	}
	var req request
	for k, vs := range q {
		switch k {
		case CollectionsParam, AfterParam, FromParam:
		default:
			return request{}, badQuery("unknown query parameter " + strconv.Quote(k) +
				"; a stream takes " + CollectionsParam + ", " + AfterParam + " and " + FromParam)
		}
		if len(vs) != 1 {
			return request{}, badQuery(k + " must be given once")
		}
	}
	if c, ok := q[CollectionsParam]; ok {
		if req.collections, err = parseCollections(c[0]); err != nil {
			return request{}, err
		}
	}
	_, hasAfter := q[AfterParam]
	_, hasFrom := q[FromParam]
	if hasAfter && hasFrom {
		return request{}, badQuery(AfterParam + " and " + FromParam + " exclude each other: give one")
	}
	if hasFrom && q.Get(FromParam) != FromOldest {
		return request{}, badQuery(FromParam + " takes only " + strconv.Quote(FromOldest) +
			"; without it a stream starts after the tenant's last event")
	}
	ids := r.Header.Values(LastEventIDHeader)
	switch {
	case len(ids) > 1:
		return request{}, badQuery(LastEventIDHeader + " must be sent once")
	case len(ids) == 1 && ids[0] != "":
		req.start, req.position = startAfter, ids[0]
	case hasAfter:
		req.start, req.position = startAfter, q.Get(AfterParam)
	case hasFrom:
		req.start = startOldest
	}
	return req, nil
}

// parseCollections reads a comma-separated list of collection names.
func parseCollections(s string) ([]string, error) {
	parts := strings.Split(s, ",")
	if len(parts) > MaxCollections {
		return nil, problem.New(http.StatusBadRequest, "invalid_collection",
			"a stream filters on at most "+strconv.Itoa(MaxCollections)+" collections")
	}
	for _, c := range parts {
		if err := store.ValidCollection(c); err != nil {
			return nil, problem.New(http.StatusBadRequest, "invalid_collection",
				strconv.Quote(c)+" in "+CollectionsParam+" is not a collection name: use 1 to 63 characters of a-z, 0-9 "+
					"and _, starting with a letter, separated by commas")
		}
	}
	return parts, nil
}

func badQuery(detail string) *problem.Error {
	return problem.New(http.StatusBadRequest, "invalid_query", detail)
}

// invalidPosition is the answer to a position that is not the caller's.
func invalidPosition(err error) *problem.Error {
	return problem.New(http.StatusBadRequest, "invalid_event_position", err.Error())
}

// storeProblem maps the outbox's refusals of a starting position.
func storeProblem(err error) error {
	switch {
	case errors.Is(err, store.ErrEventsExpired):
		return problem.New(http.StatusGone, "events_expired",
			"events after this position have been trimmed from the outbox: read the data afresh, then follow the stream without a position")
	case errors.Is(err, store.ErrEventPosition):
		return problem.New(http.StatusBadRequest, "invalid_event_position",
			"the position is after the tenant's last event; start again without a position")
	case errors.Is(err, store.ErrEventsUnsupported):
		return problem.New(http.StatusNotImplemented, "events_unsupported",
			"this server's store keeps no event outbox, so it has no change feed")
	}
	return err
}

// hubProblem maps the hub's limits.
func hubProblem(err error) error {
	switch {
	case errors.Is(err, ErrTooManyStreams):
		return problem.New(http.StatusTooManyRequests, "too_many_streams",
			"this tenant has its limit of open event streams ("+err.Error()+"); close one, or retry after the seconds in Retry-After").
			WithHeader("Retry-After", "5")
	case errors.Is(err, ErrHubClosed):
		return problem.New(http.StatusServiceUnavailable, "unavailable",
			"the server is shutting down; reconnect (to another instance) with Last-Event-ID").WithHeader("Retry-After", "1")
	case errors.Is(err, ErrHubFull):
		return problem.New(http.StatusServiceUnavailable, "overloaded",
			"the server has its limit of open event streams; retry after the seconds in Retry-After, or on another instance").
			WithHeader("Retry-After", "5")
	}
	return err
}

// incarnationOf is the start of the tenant's incarnation, zero without a
// source.
func (h *Handler) incarnationOf(r *http.Request, id tenant.ID) (time.Time, error) {
	if h.Incarnation == nil {
		return time.Time{}, nil
	}
	return h.Incarnation(r.Context(), id)
}
