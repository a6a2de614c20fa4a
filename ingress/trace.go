package ingress

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tracing"
)

// Tracing: each step of the gate is a span, the child of the span in the
// request's context (Config.TracerProvider; the global provider if nil):
// ingress.authenticate, ingress.authorize and ingress.admission, the rate
// limit and the admission queue together, whose duration is the time the
// request waited in its tenant's queue (bulkhead.decision admitted,
// throttled or refused). The tenant (tracing.TenantKey) goes on
// each step that knows it, and on the request's own span once the gate has
// settled it. No span holds the token, a header's value, the collection or
// an error's message: a refusal is its problem code.

// traceAuth ends the authentication span.
func traceAuth(span trace.Span, p Principal, err error) {
	if span.IsRecording() {
		if err != nil {
			tracing.Fail(span, errorCode(err))
		} else {
			span.SetAttributes(tracing.PrincipalKey.String(principalKind(p.Kind)))
			if p.IsTenant() && !p.Tenant.IsZero() {
				span.SetAttributes(tracing.TenantKey.String(p.Tenant.String()))
			}
		}
	}
	span.End()
}

// traceDecision ends a decision's span (authorize, admission) with its
// tenant and, if it refused (decision is not "" for a refusal), the
// decision and the refusal's code. A step that let the request in is not
// marked: it is the common case, and every attribute costs the exporter.
func traceDecision(span trace.Span, id tenant.ID, decision string, err error) {
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 2)
		if decision != "" {
			attrs = append(attrs, tracing.DecisionKey.String(decision))
		}
		if !id.IsZero() {
			attrs = append(attrs, tracing.TenantKey.String(id.String()))
		}
		span.SetAttributes(attrs...)
		if err != nil {
			tracing.Fail(span, errorCode(err))
		}
	}
	span.End()
}

// traceAuthorize ends the policy's span.
func traceAuthorize(span trace.Span, r policy.Request, allow bool) {
	if span.IsRecording() {
		span.SetAttributes(tracing.ActionKey.String(r.Action))
		d := "deny"
		if allow {
			d = ""
		}
		traceDecision(span, r.Tenant, d, nil)
		return
	}
	span.End()
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
