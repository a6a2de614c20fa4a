package recordapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/store"
)

// DefaultBodyLimit bounds a write's body when Options.BodyLimit is nil.
const DefaultBodyLimit = 1 << 20

// Options configures New. Only Router is required.
type Options struct {
	// Router opens every transaction, for the tenant in the request's
	// context (which the gate in front of the API puts there).
	Router *store.Router
	// WriteTx runs a write transaction for the tenant in ctx; nil means
	// Router.Tx. The server passes one that also updates its usage gauges
	// once the write has committed.
	WriteTx func(ctx context.Context, fn func(*store.Tx) error) error
	// BodyLimit returns the most bytes a write's body may hold for the
	// tenant in ctx; a bigger body is refused with 413 body_too_large
	// before anything is written. A limit ≤ 0 means none of the API's own
	// (put a limit in front of the API then). Nil means DefaultBodyLimit
	// for every tenant.
	BodyLimit func(ctx context.Context) (int64, error)
	// PageLimit, if set, may refuse or shrink a list request for the
	// tenant in ctx (a tenant's max_page_size, say) before the list is
	// read; an error it returns is answered as Error answers it.
	PageLimit func(ctx context.Context, opts *store.ListOptions) error
	// WriteError answers the errors Problem does not know. Nil means 503
	// unavailable for a cancelled or timed-out request and 500 internal
	// otherwise, without detail and without logging.
	WriteError func(w http.ResponseWriter, r *http.Request, err error)
	// PrimaryReads keeps the read routes on the primary: by default they
	// opt in to the tenant's shard's read replica, if it has one
	// (store.TxOptions.Replica), and honour ReadAfterHeader either way.
	PrimaryReads bool
}

// API is Bulkhead's JSON record API: the v1 routes under /v1/collections,
// each acting on the tenant in the request's context and on nothing else.
// It is safe for concurrent use.
type API struct {
	o Options
}

// New returns the record API over o.Router.
func New(o Options) (*API, error) {
	if o.Router == nil {
		return nil, errors.New("recordapi: Options.Router is required")
	}
	if o.WriteTx == nil {
		o.WriteTx = o.Router.Tx
	}
	if o.BodyLimit == nil {
		o.BodyLimit = func(context.Context) (int64, error) { return DefaultBodyLimit, nil }
	}
	return &API{o: o}, nil
}

// Route is one route of the API: a method and a ServeMux path pattern,
// the policy action a gate authorizes it as, and the handler, which
// returns its error for the caller to answer (Error).
type Route struct {
	Method, Pattern, Action string
	Handler                 func(http.ResponseWriter, *http.Request) error
}

// Routes returns the API's routes. Their actions are those of Bulkhead's
// default policy (record.read, record.write, record.delete,
// collection.list); the collection is the path value "c", where
// ingress.Gate looks for it.
func (a *API) Routes() []Route {
	const c, rec = "/v1/collections/{c}/records", "/v1/collections/{c}/records/{id}"
	return []Route{
		{http.MethodGet, "/v1/collections", "collection.list", a.Collections},
		{http.MethodGet, c, "record.read", a.List},
		{http.MethodPost, c, "record.write", a.Create},
		{http.MethodGet, rec, "record.read", a.Get},
		{http.MethodPut, rec, "record.write", a.Put},
		{http.MethodDelete, rec, "record.delete", a.Delete},
	}
}

// Mount registers every route on mux, each wrapped by guard with its
// action, and answers the handlers' errors with Error. Pass the gate that
// puts the tenant in the context: api.Mount(mux, gate.Data). A request
// that reaches a handler without a tenant fails (tenant.ErrMissing) and
// touches nothing.
func (a *API) Mount(mux *http.ServeMux, guard func(action string, h http.Handler) http.Handler) {
	for _, rt := range a.Routes() {
		h := rt.Handler
		mux.Handle(rt.Method+" "+rt.Pattern, guard(rt.Action, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r); err != nil {
				a.Error(w, r, err)
			}
		})))
	}
}

// Error answers r with the problem document for err (Problem); any other
// error goes to Options.WriteError.
func (a *API) Error(w http.ResponseWriter, r *http.Request, err error) {
	if e, ok := Problem(err); ok {
		problem.Write(w, e)
		return
	}
	if a.o.WriteError != nil {
		a.o.WriteError(w, r, err)
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		problem.Write(w, problem.New(http.StatusServiceUnavailable, "unavailable", "the request was cancelled or timed out"))
		return
	}
	problem.Write(w, problem.New(http.StatusInternalServerError, "internal", "the server failed to handle the request"))
}
