package ingress

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/ratelimit"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tracing"
)

// MaxTokenLen bounds a bearer token: API keys are short, JWTs from real
// identity providers run to a few kilobytes.
const MaxTokenLen = 8 << 10

// BearerToken returns the token of a request's single
// "Authorization: Bearer <token>" header, or "" if there is none, there
// are several, or it is malformed or over MaxTokenLen.
func BearerToken(r *http.Request) string {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return ""
	}
	return ParseBearer(vals[0])
}

// ParseBearer returns the token of an authorization value
// "Bearer <token>" (scheme case-insensitive), or "" if malformed.
func ParseBearer(v string) string {
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || len(tok) > MaxTokenLen {
		return ""
	}
	return tok
}

// HTTPOptions adapt a Gate's net/http handlers to a team's routes.
type HTTPOptions struct {
	// Collection returns the collection a data-plane request acts on
	// (default: the path value "c").
	Collection func(*http.Request) string
	// Tenant returns the tenant a control-plane request acts on (default:
	// the path value "id"; an invalid id is zero, for the handler's 400).
	Tenant func(*http.Request) tenant.ID
	// WriteError answers a request the gate could not decide (an internal
	// failure); the default logs it and answers 500 internal.
	WriteError func(http.ResponseWriter, *http.Request, error)
}

// SetHTTPOptions sets how the gate reads routes and answers failures; call
// it before serving.
func (g *Gate) SetHTTPOptions(o HTTPOptions) { g.http = o }

// Data guards a data-plane handler: h runs with the principal and the
// tenant in the request's context (FromContext, tenant.FromContext) if the
// gate lets the request in for action; the gate answers otherwise.
func (g *Gate) Data(action string, h http.Handler) http.Handler {
	return g.guard(action, planeData, h)
}

// Control guards a control-plane handler (operators only) for action.
func (g *Gate) Control(action string, h http.Handler) http.Handler {
	return g.guard(action, planeControl, h)
}

// Analytics guards an analytics handler (analysts only; no tenant in the
// context) for action. Every request is audited: the handler names what
// it asked with SetResource, never the answer.
func (g *Gate) Analytics(action string, h http.Handler) http.Handler {
	return g.guard(action, planeAnalytics, h)
}

// The planes a guard serves.
const (
	planeData = iota
	planeControl
	planeAnalytics
)

// Middleware returns Data as middleware for action.
func (g *Gate) Middleware(action string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler { return g.Data(action, h) }
}

func (g *Gate) guard(action string, plane int, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := Request{Token: BearerToken(r), Action: action, Control: plane == planeControl, Analytics: plane == planeAnalytics,
			Write: r.Method != http.MethodGet && r.Method != http.MethodHead, Client: clientHost(r.RemoteAddr)}
		switch plane {
		case planeControl:
			req.Tenant = g.pathTenant(r)
		case planeData:
			req.ActAs = r.Header.Values(ActAsHeader)
			req.Collection = g.collection(r)
		}
		pass, err := g.Enter(r.Context(), req)
		if err != nil {
			g.WriteError(w, r, err)
			return
		}
		defer func() { // releases admission, also if h panics
			if p := recover(); p != nil {
				_ = pass.Done("allow:panic")
				panic(p)
			}
			_ = pass.Done("")
		}()
		SetRateLimitHeaders(w.Header(), pass.RateLimit)
		r = r.WithContext(pass.Context())
		if !pass.Audited() {
			h.ServeHTTP(w, r)
			return
		}
		// The answer waits for the audit entry: one that cannot be
		// written withholds it.
		buf := &heldResponse{header: w.Header().Clone()}
		h.ServeHTTP(buf, r)
		if err := pass.Done(Outcome(buf.Status())); err != nil {
			g.WriteError(w, r, err)
			return
		}
		buf.sendTo(w)
	})
}

// heldResponse holds a handler's answer until its audit entry is written.
type heldResponse struct {
	header http.Header
	status int
	body   []byte
}

func (h *heldResponse) Header() http.Header { return h.header }

func (h *heldResponse) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *heldResponse) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	h.body = append(h.body, b...)
	return len(b), nil
}

// Status is the status the handler answered (200 if it wrote nothing).
func (h *heldResponse) Status() int {
	if h.status == 0 {
		return http.StatusOK
	}
	return h.status
}

func (h *heldResponse) sendTo(w http.ResponseWriter) {
	dst := w.Header()
	clear(dst)
	for k, v := range h.header {
		dst[k] = v
	}
	w.WriteHeader(h.Status())
	_, _ = w.Write(h.body)
}

// clientHost is the host of a request's remote address (the whole address
// if it has no port).
func clientHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// Outcome is the audit decision of an allowed request that was answered
// with status: "allow", or "allow:<status>" when the handler failed.
func Outcome(status int) string {
	if status >= 400 {
		return "allow:" + strconv.Itoa(status)
	}
	return "allow"
}

func (g *Gate) collection(r *http.Request) string {
	if g.http.Collection != nil {
		return g.http.Collection(r)
	}
	return r.PathValue("c")
}

func (g *Gate) pathTenant(r *http.Request) tenant.ID {
	if g.http.Tenant != nil {
		return g.http.Tenant(r)
	}
	id, _ := tenant.Parse(r.PathValue("id"))
	return id
}

// WriteError answers err: a *Denial as its problem document, anything else
// through HTTPOptions.WriteError (default: logged, 500 internal).
func (g *Gate) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var d *Denial
	if errors.As(err, &d) {
		tracing.RecordProblem(r.Context(), d.Code)
		problem.Write(w, DenialProblem(d))
		return
	}
	if g.http.WriteError != nil {
		g.http.WriteError(w, r, err)
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		tracing.RecordProblem(r.Context(), "unavailable")
		problem.Write(w, problem.New(http.StatusServiceUnavailable, "unavailable", "the request was cancelled or timed out"))
		return
	}
	tracing.RecordProblem(r.Context(), "internal")
	g.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
		slog.String("request_id", telemetry.InfoFrom(r.Context()).ID()), slog.String("error", err.Error()))
	problem.Write(w, problem.New(http.StatusInternalServerError, "internal",
		"the server failed to handle the request; the request id in X-Request-ID identifies it in the server log"))
}

// DenialProblem is the problem document of a denial, with its headers
// (WWW-Authenticate, Retry-After).
func DenialProblem(d *Denial) *problem.Error {
	e := problem.New(d.Status(), d.Code, d.Detail)
	switch {
	case d.Reason == Unauthenticated:
		v := `Bearer realm="bulkhead"`
		if d.InvalidToken {
			v += `, error="invalid_token"`
		}
		e.WithHeader("Www-Authenticate", v)
	case d.Reason == Throttled || d.Reason == Unavailable:
		e.WithHeader("Retry-After", ceilSeconds(d.RetryAfter))
	}
	if d.RateLimit.Limit > 0 {
		if e.Header == nil {
			e.Header = http.Header{}
		}
		SetRateLimitHeaders(e.Header, d.RateLimit)
	}
	return e
}

// SetRateLimitHeaders sets the RateLimit-Limit, -Remaining and -Reset
// headers of a rate limiter's decision (none for a tenant not limited).
func SetRateLimitHeaders(h http.Header, d ratelimit.Decision) {
	if d.Limit <= 0 {
		return
	}
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(max(d.Remaining, 0)))
	h.Set("RateLimit-Reset", ceilSeconds(d.Reset))
}

func ceilSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}
