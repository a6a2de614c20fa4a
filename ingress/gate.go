package ingress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/bulkhead-dev/bulkhead/admission"
	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/ratelimit"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tracing"
)

// ActAsHeader names the tenant a support agent acts as on the data plane
// (HTTP header; gRPC metadata key in lower case).
const ActAsHeader = "Bulkhead-Act-As-Tenant"

// Authorizer decides whether a principal may take an action;
// *policy.Engine is one.
type Authorizer interface {
	Authorize(ctx context.Context, r policy.Request) (policy.Decision, error)
}

// Grants tells whether a support agent holds a live grant for a tenant;
// *catalog.Catalog is one.
type Grants interface {
	LiveGrant(ctx context.Context, agentID string, id tenant.ID) (bool, error)
}

// Admitter admits a tenant's request or refuses it (admission control);
// *admission.Controller is one.
type Admitter interface {
	Acquire(ctx context.Context, id tenant.ID) (release func(), err error)
}

// Auditor appends audit entries; *audit.Log is one.
type Auditor interface {
	Append(ctx context.Context, e audit.Entry) (audit.Entry, error)
}

// Config configures a Gate. Only Authenticator is required; every other
// step is skipped when its field is nil.
type Config struct {
	// Authenticator turns the request's bearer token into a principal
	// (Chain several for several schemes).
	Authenticator Authenticator
	// Policy authorizes every request. Nil means Bulkhead's embedded
	// default policy (policy.New with no directory): roles reader, writer
	// and admin on the built-in actions, nothing else — an action of the
	// team's own is then denied until its policy allows it.
	Policy Authorizer
	// Grants lets support agents act as a tenant (read-only, under a live
	// grant). Nil refuses every support agent on the data plane.
	Grants Grants
	// Limiter and Limits rate-limit each tenant's data-plane requests;
	// both or neither.
	Limiter ratelimit.Limiter
	Limits  limits.Source
	// Admission bounds each tenant's data-plane requests in flight.
	Admission Admitter
	// Audit receives every denial (401 and 403), every control-plane
	// change, every act-as request and its refusal (on the tenant's
	// chain) and the actions in AlwaysAudit. An audited request whose
	// entry cannot be written is answered 503 audit_unavailable, never as
	// a success. Unauthenticated requests are recorded a few per client
	// address and interval, the rest counted (failureLog).
	Audit Auditor
	// AlwaysAudit are actions audited even when they change nothing
	// (reading credentials, exports).
	AlwaysAudit map[string]bool
	// OnThrottle is called for each request the rate limiter refuses
	// (reason "rate_limited", or "unavailable" when the limiter cannot
	// decide and fails closed), for metrics.
	OnThrottle func(id tenant.ID, reason string)
	// Logger receives audit failures and internal errors (slog.Default if
	// nil).
	Logger *slog.Logger
	// Now is the clock of the audit log's bound on unauthenticated
	// requests (time.Now if nil).
	Now func() time.Time
	// TracerProvider traces each pass through the gate as a span, with
	// what each step took (see trace.go). Nil: the global provider, which
	// traces nothing until a program sets one.
	TracerProvider trace.TracerProvider
	// TraceSteps makes each step (authentication, the policy, admission)
	// a span of its own under the gate's, besides the durations on it.
	// Off by default: a span per step costs a traced data plane about
	// three points of throughput (docs/tracing.md).
	TraceSteps bool
}

// Gate is the ingress: it authenticates a request, settles its tenant
// (act-as), authorizes it, rate-limits and admits it, and audits denials,
// in that order, for net/http (Data, Control, Middleware) and gRPC
// (package ingress/ingressgrpc) alike.
type Gate struct {
	cfg      Config
	log      *slog.Logger
	http     HTTPOptions
	failures failureLog
	tracer   *tracing.Tracer
}

// New returns a Gate.
func New(cfg Config) (*Gate, error) {
	if cfg.Authenticator == nil {
		return nil, errors.New("ingress: Config.Authenticator is required")
	}
	if (cfg.Limiter == nil) != (cfg.Limits == nil) {
		return nil, errors.New("ingress: Config.Limiter and Config.Limits go together: set both to rate-limit, or neither")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Policy == nil {
		eng, err := policy.New(policy.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("ingress: load the default policy: %w", err)
		}
		cfg.Policy = eng
	}
	return &Gate{cfg: cfg, log: log, tracer: tracing.NewTracer(cfg.TracerProvider)}, nil
}

// Request is what the gate needs to know of a request, whatever its
// transport.
type Request struct {
	// Token is the bearer token ("" if none or malformed).
	Token string
	// ActAs are the values of the act-as header.
	ActAs []string
	// Action is the policy action of the route.
	Action string
	// Collection is the collection a data-plane request acts on, if any.
	Collection string
	// Control marks a control-plane request (operators only); Tenant is
	// then the tenant it acts on (zero for fleet-wide actions).
	Control bool
	Tenant  tenant.ID
	// Analytics marks an analytics request (analysts only, fleet-wide, no
	// tenant; audited on the control chain). Control must be false.
	Analytics bool
	// Write marks a request that may change something (audited on the
	// control plane).
	Write bool
	// Client is the client's network address (host only), by which
	// unauthenticated requests are counted in the audit log; "" counts
	// them together.
	Client string
}

// Pass is an admitted request: who sent it and for which tenant. Done must
// be called when the request has been served.
type Pass struct {
	Principal Principal
	// Tenant is the tenant the request acts on (zero for fleet-wide
	// control-plane actions).
	Tenant tenant.ID
	// RateLimit is the rate limiter's decision (Limit 0: not limited).
	RateLimit ratelimit.Decision

	ctx        context.Context
	g          *Gate
	chain      string
	action     string
	resource   string // or, on the data plane, made from Tenant and collection when audited
	collection string
	audited    bool
	release    func()
}

// Context returns the request's context with the principal and, on the
// data plane, the tenant (tenant.WithID) in it.
func (p *Pass) Context() context.Context { return p.ctx }

// Audited reports whether the request's outcome is to be audited: Done
// then records it.
func (p *Pass) Audited() bool { return p.audited }

// Done ends the request: it releases admission and, when Audited, records
// the outcome ("allow", "allow:<status>" for a request the handler failed,
// "allow:panic" for one whose handler panicked; "" records nothing). Later
// calls do nothing. If the outcome could not be recorded, Done returns a
// *Denial (503 audit_unavailable): the request must not be answered as if
// it had succeeded (the HTTP and gRPC guards withhold the handler's
// answer and send the denial instead).
func (p *Pass) Done(outcome string) error {
	if p.release != nil {
		p.release()
		p.release = nil
	}
	if !p.audited || outcome == "" {
		return nil
	}
	p.audited = false
	res := p.resource
	if res == "" {
		res = ResourceName(p.Tenant, p.collection)
	}
	return p.g.Record(p.ctx, p.chain, p.Principal, p.action, res, outcome)
}

// Enter runs the gate's steps for req: on success the request may be
// served with the returned Pass; otherwise the error is a *Denial (answer
// it as such) or an internal failure.
func (g *Gate) Enter(ctx context.Context, req Request) (*Pass, error) {
	ctx, gt := g.startGate(ctx, req.Action)
	pass, err := g.enter(ctx, req)
	endGate(gt, err)
	return pass, err
}

func (g *Gate) enter(ctx context.Context, req Request) (*Pass, error) {
	switch {
	case req.Control && req.Analytics:
		return nil, errors.New("ingress: a request is on the control or the analytics plane, not both")
	case req.Control:
		return g.control(ctx, req)
	case req.Analytics:
		return g.analytics(ctx, req)
	}
	return g.data(ctx, req)
}

func (g *Gate) authenticate(ctx context.Context, token string) (Principal, error) {
	p, err := g.credential(ctx, token)
	traceAuth(ctx, p, err)
	return p, err
}

func (g *Gate) credential(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, deny(Unauthenticated, "unauthenticated", DetailUnauthenticated)
	}
	p, err := g.cfg.Authenticator.Authenticate(ctx, token)
	if err != nil {
		return Principal{}, classify(err)
	}
	return p, nil
}

// control: operators only, whatever the policy says (the policy may refuse
// them too). Every change, the AlwaysAudit actions and every denial are
// audited on the control chain.
func (g *Gate) control(ctx context.Context, req Request) (*Pass, error) {
	p, err := g.authenticate(ctx, req.Token)
	if err != nil {
		var d *Denial
		if errors.As(err, &d) && d.Code == "tenant_suspended" {
			// A tenant credential, however valid, has no business here.
			err = forbidden("tenant credentials cannot use the control plane; use the operator token")
		}
		return nil, g.denyAuth(ctx, req.Client, req.Action, err)
	}
	res := ResourceName(req.Tenant, "")
	if p.Kind != KindOperator {
		return nil, g.deny(ctx, audit.ControlChain, p, req.Action, res,
			forbidden("only the operator token can use the control plane"))
	}
	if !g.allowed(ctx, policy.Request{Principal: p.Policy(), Action: req.Action, Tenant: req.Tenant}) {
		return nil, g.deny(ctx, audit.ControlChain, p, req.Action, res, forbidden("the policy does not allow "+req.Action))
	}
	settleTenant(ctx, req.Tenant)
	pass := &Pass{
		Principal: p, Tenant: req.Tenant,
		g: g, chain: audit.ControlChain, action: req.Action, resource: res,
		audited: req.Write || g.cfg.AlwaysAudit[req.Action],
	}
	pass.ctx = context.WithValue(ctx, principalKey{}, pass)
	return pass, nil
}

// data: a tenant principal's tenant is its credential's; an act-as header
// with it is refused, never obeyed. A support agent must name exactly one
// tenant and holds only what a live grant and the policy allow (reads);
// every act-as request is audited on the tenant's chain. The operator
// token is refused here.
func (g *Gate) data(ctx context.Context, req Request) (*Pass, error) {
	p, err := g.authenticate(ctx, req.Token)
	if err != nil {
		return nil, g.denyAuth(ctx, req.Client, req.Action, err)
	}
	pr := policy.Request{Principal: p.Policy(), Action: req.Action, Collection: req.Collection}
	switch {
	case p.IsTenant():
		if p.Tenant.IsZero() {
			// The authenticator's fault, not the caller's: no tenant is
			// guessed, none is "all tenants".
			return nil, fmt.Errorf("ingress: the authenticator returned a %s principal without a tenant (id %q)", p.Kind, p.ID)
		}
		telemetry.InfoFrom(ctx).SetTenant(p.Tenant.String())
		settleTenant(ctx, p.Tenant)
		if len(req.ActAs) > 0 {
			return nil, g.deny(ctx, p.Tenant.String(), p, req.Action, ResourceName(p.Tenant, req.Collection),
				forbidden(ActAsHeader+" is for support agents; a tenant credential always acts on its own tenant"))
		}
		pr.Tenant = p.Tenant
	case p.Kind == KindSupport:
		if len(req.ActAs) != 1 {
			return nil, g.deny(ctx, audit.ControlChain, p, req.Action, "",
				forbidden("a support agent must name exactly one tenant in "+ActAsHeader))
		}
		id, err := tenant.Parse(req.ActAs[0])
		if err != nil {
			return nil, g.deny(ctx, audit.ControlChain, p, req.Action, "", forbidden(ActAsHeader+" does not hold a valid tenant id"))
		}
		live := false
		if g.cfg.Grants != nil {
			if live, err = g.cfg.Grants.LiveGrant(ctx, p.ID, id); err != nil {
				return nil, err
			}
		}
		pr.Tenant, pr.ActAs, pr.GrantLive = id, true, live
		// Fail closed whatever the policy says: reads under a live grant
		// only. The refusal goes on the tenant's chain, as every act-as
		// request does.
		if !live || (req.Action != "record.read" && req.Action != "collection.list") {
			return nil, g.deny(ctx, id.String(), p, req.Action, ResourceName(id, req.Collection),
				forbidden("support access needs a live grant for this tenant and is read-only"))
		}
		settleTenant(ctx, id)
	case p.Kind == KindAnalyst:
		return nil, g.deny(ctx, audit.ControlChain, p, req.Action, "",
			forbidden("analyst credentials reach only the analytics API, never a tenant's data"))
	default:
		return nil, g.deny(ctx, audit.ControlChain, p, req.Action, "",
			forbidden("the operator token cannot use the data plane; use a tenant credential"))
	}
	if !g.allowed(ctx, pr) {
		return nil, g.deny(ctx, pr.Tenant.String(), p, req.Action, ResourceName(pr.Tenant, req.Collection),
			forbidden("the policy does not allow "+req.Action+" for this credential"))
	}
	pass := &Pass{
		Principal: p, Tenant: pr.Tenant, g: g,
		chain: pr.Tenant.String(), action: req.Action, collection: req.Collection,
		audited: pr.ActAs || g.cfg.AlwaysAudit[req.Action],
	}
	// The context holds the pass itself: its principal (no copy to box)
	// and the resource a handler may name (SetResource).
	pass.ctx = tenant.WithID(context.WithValue(ctx, principalKey{}, pass), pr.Tenant)
	if err := g.limit(pass, !pr.ActAs); err != nil {
		var d *Denial
		if errors.As(err, &d) {
			_ = pass.Done("allow:" + strconv.Itoa(d.Status())) // refused either way
		}
		return nil, err
	}
	return pass, nil
}

// allowed asks the policy; an error (a request the model cannot express)
// is a denial.
func (g *Gate) allowed(ctx context.Context, r policy.Request) bool {
	d, err := g.cfg.Policy.Authorize(ctx, r)
	allow := err == nil && d.Allow
	traceAuthorize(ctx, allow)
	return allow
}

// limit rate-limits (unless rate is false: support reads are not the
// tenant's traffic) and admits the request of p.
func (g *Gate) limit(p *Pass, rate bool) error {
	rate = rate && g.cfg.Limiter != nil
	if !rate && g.cfg.Admission == nil {
		return nil
	}
	ctx, start := p.ctx, admissionStart(p.ctx)
	if rate {
		if err := g.checkRate(ctx, p); err != nil {
			traceAdmission(ctx, start, "throttled", errorCode(err))
			return err
		}
	}
	if g.cfg.Admission != nil {
		release, err := g.cfg.Admission.Acquire(ctx, p.Tenant)
		if err != nil {
			err = admissionDenial(err)
			traceAdmission(ctx, start, "refused", errorCode(err))
			return err
		}
		p.release = release
	}
	traceAdmission(ctx, start, "", "")
	return nil
}

func (g *Gate) checkRate(ctx context.Context, p *Pass) error {
	l, err := g.cfg.Limits.For(ctx, p.Tenant)
	if err != nil {
		return err
	}
	d, err := g.cfg.Limiter.Allow(ctx, p.Tenant, l)
	if errors.Is(err, ratelimit.ErrUnavailable) {
		g.throttled(p.Tenant, "unavailable")
		return &Denial{Reason: Unavailable, Code: "unavailable",
			Detail: "rate limits cannot be checked right now; retry shortly", RetryAfter: time.Second}
	}
	if err != nil {
		return err
	}
	p.RateLimit = d
	if !d.Allowed {
		g.throttled(p.Tenant, "rate_limited")
		return &Denial{Reason: Throttled, Code: "rate_limited",
			Detail:     "this tenant is over its request rate limit; retry after the number of seconds in Retry-After",
			RetryAfter: d.RetryAfter, RateLimit: d}
	}
	return nil
}

func (g *Gate) throttled(id tenant.ID, reason string) {
	if g.cfg.OnThrottle != nil {
		g.cfg.OnThrottle(id, reason)
	}
}

// admissionDenial answers a request admission refused.
func admissionDenial(err error) *Denial {
	d := &Denial{Reason: Unavailable, Code: "overloaded", RetryAfter: time.Second}
	switch {
	case errors.Is(err, admission.ErrTenantOverloaded):
		d.Reason, d.Code = Throttled, "tenant_overloaded"
		d.Detail = "this tenant has too many requests in flight and waiting; retry later with fewer concurrent requests"
	case errors.Is(err, admission.ErrOverloaded):
		d.Detail = "the server is saturated; retry later"
	default: // the request ended while it waited
		d.Detail = "the request ended while waiting for admission"
	}
	return d
}

// deny audits a refusal (only denials: an internal failure is not a
// decision) and returns err.
func (g *Gate) deny(ctx context.Context, chain string, p Principal, action, res string, err error) error {
	var d *Denial
	if errors.As(err, &d) && (d.Reason == Unauthenticated || d.Reason == Forbidden) {
		_ = g.Record(ctx, chain, p, action, res, "deny:"+d.Code) // refused either way
	}
	return err
}

// denyAuth audits a request whose credential failed (on the control
// chain) and returns err. Unauthenticated requests are not recorded one by
// one without bound: each client address gets a few entries per interval,
// and the rest are counted into one entry per address (failureLog).
func (g *Gate) denyAuth(ctx context.Context, client, action string, err error) error {
	var d *Denial
	if g.cfg.Audit != nil && errors.As(err, &d) && d.Reason == Unauthenticated {
		record, flush := g.failures.note(client, g.now())
		for _, f := range flush { // counts of no one request: no request id
			_ = g.Record(context.Background(), audit.ControlChain, Principal{}, FailuresAction, "client/"+f.client,
				"suppressed:"+strconv.FormatInt(f.count, 10))
		}
		if !record {
			return err
		}
	}
	return g.deny(ctx, audit.ControlChain, Principal{}, action, "", err)
}

// Bounds of the audit log's fields (audit.Entry).
const (
	maxAuditAction    = 64
	maxAuditResource  = 512
	maxAuditRequestID = 128
	maxAuditDecision  = 32
)

// ResourceName names what a request acts on in the audit log:
// tenant/<id>[/collections/<c>], or "" for fleet-wide actions.
func ResourceName(id tenant.ID, collection string) string {
	if id.IsZero() {
		return ""
	}
	s := "tenant/" + id.String()
	if collection != "" {
		s += "/collections/" + collection
	}
	return s
}
