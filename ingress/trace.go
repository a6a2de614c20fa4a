package ingress

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tracing"
)

// Tracing: each pass through the gate (Enter) is one span, ingress.gate,
// the child of the span in the request's context (Config.TracerProvider;
// the global provider if nil). Its steps are events on it, each at the
// time the step ended: "authenticated" (with the principal's kind),
// "authorized" and "admitted" (after the rate limit and the admission
// queue; bulkhead.admission.wait_us is how long the request waited there).
// One span with events rather than a span per step: the steps take
// microseconds, and a span costs the exporter several times what an event
// does (see docs/tracing.md). The span carries the route's
// action, the tenant once the gate has settled it (also put on the
// request's own span), and, when the gate refuses, bulkhead.decision and
// the problem code. No span holds the token, a header's value, the
// collection or an error's message.

// The attributes of an ingress.gate span besides tracing's.
const attrWait = attribute.Key("bulkhead.admission.wait_us")

// gateTrace is a gate pass's span and what it learned, carried in the
// context under gateKey while the gate runs (only when the span records).
type gateTrace struct {
	span     trace.Span
	tenant   tenant.ID
	decision string
}

type gateKey struct{}

// startGate starts the gate's span and returns ctx carrying it for the
// steps (the request's own span stays the context's current span).
func (g *Gate) startGate(ctx context.Context, action string) (context.Context, *gateTrace) {
	_, span := g.tracer.Start(ctx, "ingress.gate")
	if !span.IsRecording() {
		return ctx, nil
	}
	gt := &gateTrace{span: span}
	span.SetAttributes(tracing.ActionKey.String(action))
	return context.WithValue(ctx, gateKey{}, gt), gt
}

// gateFrom returns the gate's trace in ctx, or nil when it does not record.
func gateFrom(ctx context.Context) *gateTrace {
	gt, _ := ctx.Value(gateKey{}).(*gateTrace)
	return gt
}

// endGate ends the gate's span: the tenant, and the refusal if err is one.
func endGate(gt *gateTrace, err error) {
	if gt == nil {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 2)
	if !gt.tenant.IsZero() {
		attrs = append(attrs, tracing.TenantKey.String(gt.tenant.String()))
	}
	if gt.decision != "" {
		attrs = append(attrs, tracing.DecisionKey.String(gt.decision))
	}
	gt.span.SetAttributes(attrs...)
	if err != nil {
		tracing.Fail(gt.span, errorCode(err))
	}
	gt.span.End()
}

// traceAuth notes the authentication's outcome.
func traceAuth(ctx context.Context, p Principal, err error) {
	gt := gateFrom(ctx)
	if gt == nil || err != nil {
		return
	}
	gt.span.AddEvent("authenticated", trace.WithAttributes(tracing.PrincipalKey.String(principalKind(p.Kind))))
	if p.IsTenant() {
		gt.tenant = p.Tenant
	}
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
	if !allow {
		gt.decision = "deny"
		return
	}
	gt.span.AddEvent("authorized")
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
// is "" when the request was admitted.
func traceAdmission(ctx context.Context, start time.Time, decision string) {
	gt := gateFrom(ctx)
	if gt == nil {
		return
	}
	if decision != "" {
		gt.decision = decision
	}
	gt.span.SetAttributes(attrWait.Int64(time.Since(start).Microseconds()))
	if decision == "" {
		gt.span.AddEvent("admitted")
	}
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
