package export

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/store"
)

// ContentType is the media type of an export.
const ContentType = "application/x-ndjson"

// The trailers of a complete export over HTTP: how many records (lines)
// and the SHA-256 (lowercase hex) of the body. A response cut short has
// neither: compare them with what arrived.
const (
	TrailerRecords = "Bulkhead-Export-Records"
	TrailerSHA256  = "Bulkhead-Export-Sha256"
)

// AfterParam is the query parameter that holds the resume position.
const AfterParam = "after"

// Handler serves the export of the tenant in the request's context:
// GET ...?after=<collection>/<id> answers 200 with the NDJSON stream
// (ContentType) and the trailers. Put it behind a gate that puts the
// tenant in the context and authorizes the export; do not let that gate
// hold answers until an audit entry is written (ingress.Config.AlwaysAudit
// would keep the whole export in memory): audit in Started instead.
type Handler struct {
	// Router reads the records (required).
	Router *store.Router
	// PageSize is Options.PageSize (0: DefaultPageSize).
	PageSize int
	// Started, if set, is called once the request is valid and before
	// anything is sent, with the resume position: a server records the
	// export in its audit log here. If it fails, Serve returns its error
	// and sends nothing.
	Started func(r *http.Request, after Position) error
	// WriteTimeout, if positive, is how long each page may take to reach
	// the client: before each page the connection's write deadline is
	// moved that far ahead, so that a long export is not cut by the HTTP
	// server's WriteTimeout while a stalled client still is.
	WriteTimeout time.Duration
}

// Serve answers r. A request it cannot serve (a bad position is 400
// invalid_position, as a *problem.Error) or that Started refuses is
// returned as an error before anything is sent: answer it. Once the stream
// has begun, a failure (the store, the client going away) aborts the
// response with panic(http.ErrAbortHandler), as net/http provides, so the
// client sees a broken stream and never a short one that looks whole.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request) error {
	after, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	if h.Started != nil {
		if err := h.Started(r, after); err != nil {
			return err
		}
	}
	hdr := w.Header()
	hdr.Set("Content-Type", ContentType)
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Trailer", TrailerRecords+", "+TrailerSHA256)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	rc := http.NewResponseController(w)
	tally := NewTally()
	h.deadline(rc)
	_, err = Write(r.Context(), h.Router, writerFunc(func(p []byte) (int, error) {
		tally.Write(p)
		return w.Write(p)
	}), Options{After: after, PageSize: h.PageSize, Page: func(Stats) error {
		if err := rc.Flush(); err != nil {
			return err
		}
		h.deadline(rc)
		return nil
	}})
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	sum := tally.Summary()
	hdr.Set(TrailerRecords, strconv.FormatInt(sum.Records, 10))
	hdr.Set(TrailerSHA256, sum.SHA256)
	return nil
}

func (h *Handler) deadline(rc *http.ResponseController) {
	if h.WriteTimeout > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(h.WriteTimeout)) // not every writer can; then the server's own timeout applies
	}
}

// parseQuery reads the one parameter an export takes.
func parseQuery(raw string) (Position, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return Position{}, invalid("the query string is malformed")
	}
	for k, vs := range q {
		if k != AfterParam {
			return Position{}, invalid("unknown query parameter " + strconv.Quote(k) + "; an export takes only " + AfterParam)
		}
		if len(vs) != 1 {
			return Position{}, invalid(AfterParam + " must be given once")
		}
	}
	p, err := ParsePosition(q.Get(AfterParam))
	if errors.Is(err, ErrInvalidPosition) {
		return Position{}, invalid(err.Error())
	}
	return p, err
}

func invalid(detail string) *problem.Error {
	return problem.New(http.StatusBadRequest, "invalid_position", detail)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
