package ingress

import (
	"context"
	"errors"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/policy"
)

// AnalyticsResource is the audit resource of an analytics request whose
// handler names none (SetResource names the query's shape).
const AnalyticsResource = "analytics"

// analytics: analysts only, whatever the policy says (the policy may
// refuse them too). The request acts on no tenant: the context holds the
// principal but no tenant, so the handler reads each tenant only in a
// context it makes for it. Every request is audited on the control chain,
// its denials too.
func (g *Gate) analytics(ctx context.Context, req Request) (*Pass, error) {
	p, err := g.authenticate(ctx, req.Token)
	if err != nil {
		var d *Denial
		if errors.As(err, &d) && d.Code == "tenant_suspended" {
			err = forbidden("tenant credentials cannot use the analytics API; use an analyst's token")
		}
		return nil, g.denyAuth(ctx, req.Client, req.Action, err)
	}
	if p.Kind != KindAnalyst {
		return nil, g.deny(ctx, audit.ControlChain, p, req.Action, AnalyticsResource,
			forbidden("only analyst credentials can use the analytics API; the operator creates analysts with POST /v1/admin/analysts"))
	}
	if !g.allowed(ctx, policy.Request{Principal: p.Policy(), Action: req.Action}) {
		return nil, g.deny(ctx, audit.ControlChain, p, req.Action, AnalyticsResource, forbidden("the policy does not allow "+req.Action))
	}
	pass := &Pass{
		Principal: p, g: g, chain: audit.ControlChain, action: req.Action,
		resource: AnalyticsResource, audited: true,
	}
	pass.ctx = context.WithValue(ctx, principalKey{}, pass)
	return pass, nil
}
