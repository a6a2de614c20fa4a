package ingress

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/telemetry"
)

// FailuresAction is the audit action of the entry that counts a client
// address's unauthenticated requests beyond failureBurst in one
// failureWindow: principal "anonymous", resource "client/<address>",
// decision "suppressed:<count>", on the control chain.
const FailuresAction = "auth.failures"

// The bound on unauthenticated requests in the audit log: per client
// address and window, the first failureBurst are recorded one by one and
// the rest counted; at most failureClients addresses are told apart per
// window (the others are counted as "client/*").
const (
	failureWindow  = time.Minute
	failureBurst   = 5
	failureClients = 4096
)

// auditPauses are the pauses between the attempts to write an audit entry
// that failed (a busy or briefly unreachable database).
var auditPauses = []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond}

// Record appends an entry to chain (a tenant id, or "" for the control
// chain) of the gate's audit log, for what a handler does beyond what the
// gate records itself. What the request carries (its principal's names,
// its path's collection) is escaped and bounded to fit, never a reason to
// drop the entry. A failed append is retried a few times; if the entry
// still cannot be written, Record logs it and returns a *Denial (503
// audit_unavailable), and the caller must not answer as if the action had
// succeeded.
func (g *Gate) Record(ctx context.Context, chain string, p Principal, action, resource, decision string) error {
	if g.cfg.Audit == nil {
		return nil
	}
	if chain == "" {
		chain = audit.ControlChain
	}
	ctx = context.WithoutCancel(ctx)
	reqID := telemetry.InfoFrom(ctx).ID()
	e := audit.Entry{
		Chain: chain, Principal: p.String(), Action: auditText(action, maxAuditAction),
		Resource: auditText(resource, maxAuditResource), Decision: auditText(decision, maxAuditDecision),
		RequestID: auditText(reqID, maxAuditRequestID),
	}
	var err error
	for attempt := 0; ; attempt++ {
		if _, err = g.cfg.Audit.Append(ctx, e); err == nil {
			return nil
		}
		if errors.Is(err, audit.ErrInvalidEntry) || attempt == len(auditPauses) {
			break
		}
		time.Sleep(auditPauses[attempt])
	}
	g.log.LogAttrs(ctx, slog.LevelError, "audit append failed",
		slog.String("request_id", reqID), slog.String("chain", chain), slog.String("action", e.Action),
		slog.String("decision", e.Decision), slog.String("error", err.Error()))
	return &Denial{Reason: Unavailable, Code: "audit_unavailable", RetryAfter: time.Second,
		Detail: "the request could not be recorded in the audit log, so its answer is withheld; it may have taken effect: check before retrying"}
}

// SetResource names what the request of ctx acts on, for its audit entry,
// where the gate cannot tell from the route: a tenant created from the
// body, a support agent's id. It does nothing for a context the gate did
// not make.
func SetResource(ctx context.Context, resource string) {
	if p, ok := ctx.Value(principalKey{}).(*Pass); ok {
		p.resource = resource
	}
}

func (g *Gate) now() time.Time {
	if g.cfg.Now != nil {
		return g.cfg.Now()
	}
	return time.Now()
}

// failureLog counts unauthenticated requests per client address and
// window, so that junk credentials cannot grow the audit log without
// bound: per window at most failureBurst entries per address plus one
// count per address, for at most failureClients addresses and "*".
type failureLog struct {
	mu      sync.Mutex // guards the fields below
	start   time.Time  // of the current window
	clients map[string]*failureCount
}

type failureCount struct {
	client string
	seen   int64 // requests in the window
}

// failureTotal is a count to write: count requests of client beyond the
// burst in a window that has ended.
type failureTotal struct {
	client string
	count  int64
}

// note counts one unauthenticated request of client at now. It reports
// whether the request is to be recorded on its own, and the counts of the
// window that ended, if one did, to be recorded once each.
func (f *failureLog) note(client string, now time.Time) (record bool, flush []failureTotal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.clients == nil || now.Sub(f.start) >= failureWindow || now.Before(f.start) {
		for _, c := range f.clients {
			if c.seen > failureBurst {
				flush = append(flush, failureTotal{client: c.client, count: c.seen - failureBurst})
			}
		}
		f.start, f.clients = now, map[string]*failureCount{}
	}
	if client == "" {
		client = "unknown"
	}
	c, ok := f.clients[client]
	if !ok {
		if len(f.clients) >= failureClients {
			client = "*"
			c = f.clients[client]
		}
		if c == nil {
			c = &failureCount{client: client}
			f.clients[client] = c
		}
	}
	c.seen++
	return c.seen <= failureBurst, flush
}

// drain returns the counts of the current window and starts a new one.
func (f *failureLog) drain() []failureTotal {
	f.mu.Lock()
	defer f.mu.Unlock()
	var flush []failureTotal
	for _, c := range f.clients {
		if c.seen > failureBurst {
			flush = append(flush, failureTotal{client: c.client, count: c.seen - failureBurst})
		}
	}
	f.clients = nil
	return flush
}

// FlushFailures records the counts of unauthenticated requests not yet
// written (those of the current window), as a window's end does. Call it
// when the gate stops serving, so that no count is lost at shutdown.
func (g *Gate) FlushFailures(ctx context.Context) error {
	if g.cfg.Audit == nil {
		return nil
	}
	var errs []error
	for _, f := range g.failures.drain() {
		if err := g.Record(ctx, audit.ControlChain, Principal{}, FailuresAction, "client/"+f.client,
			"suppressed:"+strconv.FormatInt(f.count, 10)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
