package telemetry

import (
	"context"
	"io"
	"log/slog"
	"sync"
)

// NewLogger returns a logger that writes JSON lines at level and above to w.
func NewLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// RequestInfo is what the request log and metrics know about one request.
// The layers of the HTTP stack fill it in as they learn it (the request id
// first, the route after routing, the tenant after authentication); the
// middleware reads it once the handler has returned. It is safe for
// concurrent use.
type RequestInfo struct {
	mu     sync.Mutex
	id     string // guarded by mu
	tenant string // guarded by mu
	route  string // guarded by mu
	client string // guarded by mu
	queued bool   // guarded by mu
}

// SetQueued records that the request waited in an admission queue.
func (i *RequestInfo) SetQueued() {
	i.mu.Lock()
	i.queued = true
	i.mu.Unlock()
}

// Queued reports whether the request waited in an admission queue.
func (i *RequestInfo) Queued() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.queued
}

// SetClientID records the request id the client sent (X-Request-ID), kept
// apart from the server's own id.
func (i *RequestInfo) SetClientID(id string) {
	i.mu.Lock()
	i.client = id
	i.mu.Unlock()
}

// ClientID returns the request id the client sent, if any.
func (i *RequestInfo) ClientID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.client
}

// SetID records the request id.
func (i *RequestInfo) SetID(id string) {
	i.mu.Lock()
	i.id = id
	i.mu.Unlock()
}

// SetTenant records the authenticated tenant (its canonical id).
func (i *RequestInfo) SetTenant(t string) {
	i.mu.Lock()
	i.tenant = t
	i.mu.Unlock()
}

// SetRoute records the route pattern that served the request, such as
// "GET /v1/collections/{c}/records/{id}". It must come from a fixed set of
// patterns, never from the raw path, so that it is safe as a metric label.
func (i *RequestInfo) SetRoute(r string) {
	i.mu.Lock()
	i.route = r
	i.mu.Unlock()
}

// ID returns the request id ("" if not yet set).
func (i *RequestInfo) ID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.id
}

// Tenant returns the tenant ("" if the request has none).
func (i *RequestInfo) Tenant() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.tenant
}

// Route returns the route pattern ("" if no route matched).
func (i *RequestInfo) Route() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.route
}

type infoKey struct{}

// WithInfo returns a copy of ctx that carries info.
func WithInfo(ctx context.Context, info *RequestInfo) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// InfoFrom returns the RequestInfo in ctx. Without one it returns a fresh,
// detached RequestInfo, so callers can always set fields.
func InfoFrom(ctx context.Context) *RequestInfo {
	if i, ok := ctx.Value(infoKey{}).(*RequestInfo); ok {
		return i
	}
	return &RequestInfo{}
}
