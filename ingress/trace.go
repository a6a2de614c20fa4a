package ingress

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tracing"
)

// Tracing: each pass through the gate (Enter) is one span, ingress.gate,
// the child of the span in the request's context (Config.TracerProvider;
// the global provider if nil). What each step took is an attribute,
// present when the step passed: bulkhead.authentication_us (from the
// gate's start to the credential checked), bulkhead.authorization_us (the
// policy's decision) and bulkhead.admission.wait_us (how long the request
// waited for the rate limit and admission). With Config.TraceSteps each
// step is also a span under the gate's: ingress.authenticate,
// ingress.authorize and ingress.admit, made as the step ends with the
// step's start as its start (so the steps need no context of their own),
// with the tenant once known, failed with the problem code when the step
// refused the request (and bulkhead.decision for the policy and
// admission). The steps take microseconds and a span costs several times
// what an attribute does, hence the option (see docs/tracing.md). What
// the steps learned is kept aside and set on the gate's span in one call
// as it ends: the route's action, the principal's kind, the tenant once
// the gate has settled it (also put on the request's own span) and, when
// the gate refuses, bulkhead.decision and the problem code. No span holds
// the token, a header's value, the collection or an error's message.

// The attributes of an ingress.gate span besides tracing's.
const (
	attrAuthn = attribute.Key("bulkhead.authentication_us")
	attrAuthz = attribute.Key("bulkhead.authorization_us")
	attrWait  = attribute.Key("bulkhead.admission.wait_us")
)

// gateTrace is a gate pass's span and what it learned, carried in the
// context under gateKey while the gate runs (only when the span records).
type gateTrace struct {
	span      trace.Span
	steps     *tracing.Tracer // nil unless each step is a span too
	ctx       context.Context // the gate's span's, the steps' parent
	action    string
	principal string // the principal's kind, once authenticated
	tenant    tenant.ID
	decision  string
	start     time.Time     // when the gate began
	authn     time.Duration // the gate's start to the credential checked (0: not passed)
	authz     time.Duration // the policy's decision (0: not allowed)
	waited    bool          // the rate limit or admission ran
	wait      time.Duration
}

type gateKey struct{}

// startGate starts the gate's span and returns ctx carrying it for the
// steps (the request's own span stays the context's current span).
func (g *Gate) startGate(ctx context.Context, action string) (context.Context, *gateTrace) {
	var span trace.Span
	var sctx context.Context
	if g.cfg.TraceSteps { // the steps' spans are the gate span's children
		sctx, span = g.tracer.Start(ctx, "ingress.gate")
	} else {
		span = g.tracer.StartLeaf(ctx, "ingress.gate", trace.SpanKindInternal)
	}
	if !span.IsRecording() {
		return ctx, nil
	}
	gt := &gateTrace{span: span, action: action, start: time.Now()}
	if g.cfg.TraceSteps {
		gt.steps, gt.ctx = g.tracer, sctx
	}
	return context.WithValue(ctx, gateKey{}, gt), gt
}

// gateFrom returns the gate's trace in ctx, or nil when it does not record.
func gateFrom(ctx context.Context) *gateTrace {
	gt, _ := ctx.Value(gateKey{}).(*gateTrace)
	return gt
}

// step records a step that began at start and has just ended as a span
// under the gate's, if steps are spans: with the tenant once the gate
// knows it, attr (if valid) and decision (if any), failed with code
// unless code is "".
func (gt *gateTrace) step(name string, start time.Time, code, decision string, attr attribute.KeyValue) {
	if gt.steps == nil {
		return
	}
	_, span := gt.steps.StartAt(gt.ctx, name, start)
	attrs := tracing.Scratch()
	if !gt.tenant.IsZero() {
		attrs = append(attrs, tracing.TenantKey.String(gt.tenant.String()))
	}
	if attr.Valid() {
		attrs = append(attrs, attr)
	}
	if decision != "" {
		attrs = append(attrs, tracing.DecisionKey.String(decision))
	}
	span.SetAttributes(attrs...)
	tracing.Release(attrs)
	if code != "" {
		tracing.Fail(span, code)
	}
	span.End()
}

// endGate sets what the gate learned on its span, and the refusal if err
// is one, and ends it.
func endGate(gt *gateTrace, err error) {
	if gt == nil {
		return
	}
	attrs := append(tracing.Scratch(), tracing.ActionKey.String(gt.action))
	if gt.principal != "" {
		attrs = append(attrs, tracing.PrincipalKey.String(gt.principal))
	}
	if !gt.tenant.IsZero() {
		attrs = append(attrs, tracing.TenantKey.String(gt.tenant.String()))
	}
	if gt.authn > 0 {
		attrs = append(attrs, attrAuthn.Int64(gt.authn.Microseconds()))
	}
	if gt.authz > 0 {
		attrs = append(attrs, attrAuthz.Int64(gt.authz.Microseconds()))
	}
	if gt.waited {
		attrs = append(attrs, attrWait.Int64(gt.wait.Microseconds()))
	}
	if gt.decision != "" {
		attrs = append(attrs, tracing.DecisionKey.String(gt.decision))
	}
	if err != nil {
		attrs = append(attrs, tracing.ProblemKey.String(errorCode(err)))
		gt.span.SetStatus(codes.Error, errorCode(err))
	}
	gt.span.SetAttributes(attrs...)
	tracing.Release(attrs)
	gt.span.End()
}

// traceAuth notes the authentication's outcome.
func traceAuth(ctx context.Context, p Principal, err error) {
	gt := gateFrom(ctx)
	if gt == nil {
		return
	}
	if err != nil {
		gt.step("ingress.authenticate", gt.start, errorCode(err), "", attribute.KeyValue{})
		return
	}
	gt.authn = max(time.Since(gt.start), time.Nanosecond) // present even if the clock did not move
	gt.principal = principalKind(p.Kind)
	if p.IsTenant() {
		gt.tenant = p.Tenant
	}
	gt.step("ingress.authenticate", gt.start, "", "", tracing.PrincipalKey.String(gt.principal))
}

// settleTenant records the tenant the gate settled on the request's span
// and the gate's.
func settleTenant(ctx context.Context, id tenant.ID) {
	tracing.SetTenant(ctx, id)
	if gt := gateFrom(ctx); gt != nil && !id.IsZero() {
		gt.tenant = id
	}
}

// traceAuthorize notes the policy's decision.
func traceAuthorize(ctx context.Context, allow bool) {
	gt := gateFrom(ctx)
	if gt == nil {
		return
	}
	from := gt.start.Add(gt.authn)
	if !allow {
		gt.decision = "deny"
		gt.step("ingress.authorize", from, "forbidden", "deny", attribute.KeyValue{})
		return
	}
	gt.authz = max(time.Since(gt.start)-gt.authn, time.Nanosecond)
	gt.step("ingress.authorize", from, "", "", attribute.KeyValue{})
}

// admissionStart returns the time the request began to wait for
// admission, zero when the gate does not record.
func admissionStart(ctx context.Context) time.Time {
	if gateFrom(ctx) == nil {
		return time.Time{}
	}
	return time.Now()
}

// traceAdmission notes the rate limit's and admission's outcome: decision
// is "" when the request was admitted, code the refusal's problem code.
func traceAdmission(ctx context.Context, start time.Time, decision, code string) {
	gt := gateFrom(ctx)
	if gt == nil {
		return
	}
	if decision != "" {
		gt.decision = decision
	}
	gt.waited, gt.wait = true, time.Since(start)
	gt.step("ingress.admit", start, code, decision, attribute.KeyValue{})
}

// errorCode is a refusal's problem code, "internal" for anything else.
func errorCode(err error) string {
	var d *Denial
	if errors.As(err, &d) {
		return d.Code
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	return "internal"
}

// principalKind bounds the principal kinds a span names to the known ones.
func principalKind(k string) string {
	switch k {
	case KindOperator, KindSupport, KindTenantKey, KindTenantUser, KindAnalyst:
		return k
	}
	return "other"
}
