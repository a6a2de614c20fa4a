package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Actions that change nothing but are audited anyway (they read or
// manage credentials or grants).
var auditedReads = map[string]bool{
	"key.list": true, "grant.list": true, "issuer.manage": true, "support.manage": true,
}

// forbidden is the one answer to a denied request.
func forbidden(detail string) *apiError {
	return newError(http.StatusForbidden, "forbidden", detail)
}

// control guards a control-plane handler: authenticate, then authorize
// action on the tenant named by the path's {id} (zero for fleet-wide
// actions), then run h. Only operators pass, whatever the policy says; the
// policy may refuse them too. Every change, every credential or grant
// operation and every denial is audited on the control chain.
func (s *Server) control(action string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err != nil {
			if errors.Is(err, catalog.ErrSuspended) {
				// A tenant credential, however valid, has no business here.
				err = forbidden("tenant credentials cannot use the control plane; use the operator token")
			}
			s.deny(w, r, controlChain, p, action, "", err)
			return
		}
		id, _ := tenant.Parse(r.PathValue("id")) // an invalid id is the handler's 400
		res := resourceName(id, "")
		if p.Kind != kindOperator {
			s.deny(w, r, controlChain, p, action, res,
				forbidden("only the operator token can use the control plane"))
			return
		}
		if !s.allowed(r.Context(), policy.Request{Principal: p.policy(), Action: action, Tenant: id}) {
			s.deny(w, r, controlChain, p, action, res, forbidden("the policy does not allow "+action))
			return
		}
		if r.Method == http.MethodGet && !auditedReads[action] {
			h(w, r)
			return
		}
		rec := &telemetry.StatusRecorder{ResponseWriter: w}
		h(rec, r)
		s.record(r, controlChain, p, action, res, outcome(rec))
	}
}

// data guards a data-plane (or tenant self-service) handler: authenticate,
// settle the tenant, authorize action, and run h with the tenant in the
// context. A tenant principal's tenant is its credential's; a
// Bulkhead-Act-As-Tenant header with it is refused, never obeyed. A
// support agent must name exactly one tenant in that header and holds only
// what a live grant and the policy allow (reads); every act-as request is
// audited on the tenant's chain. The operator token is refused here.
func (s *Server) data(action string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err != nil {
			s.deny(w, r, controlChain, p, action, "", err)
			return
		}
		ctx := r.Context()
		coll := r.PathValue("c")
		actAs := r.Header.Values(actAsHeader)
		req := policy.Request{Principal: p.policy(), Action: action, Collection: coll}
		switch p.Kind {
		case kindTenantKey, kindTenantUser:
			telemetry.InfoFrom(ctx).SetTenant(p.Tenant.String())
			if len(actAs) > 0 {
				s.deny(w, r, p.Tenant.String(), p, action, resourceName(p.Tenant, coll),
					forbidden(actAsHeader+" is for support agents; a tenant credential always acts on its own tenant"))
				return
			}
			req.Tenant = p.Tenant
		case kindSupport:
			if len(actAs) != 1 {
				s.deny(w, r, controlChain, p, action, "",
					forbidden("a support agent must name exactly one tenant in "+actAsHeader))
				return
			}
			id, err := tenant.Parse(actAs[0])
			if err != nil {
				s.deny(w, r, controlChain, p, action, "", forbidden(actAsHeader+" does not hold a valid tenant id"))
				return
			}
			live, err := s.catalog.LiveGrant(ctx, p.ID, id)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			req.Tenant, req.ActAs, req.GrantLive = id, true, live
			// Fail closed whatever the policy says: reads under a live grant only.
			if !live || (action != "record.read" && action != "collection.list") {
				s.deny(w, r, controlChain, p, action, resourceName(id, coll),
					forbidden("support access needs a live grant for this tenant and is read-only"))
				return
			}
		default:
			s.deny(w, r, controlChain, p, action, "",
				forbidden("the operator token cannot use the data plane; use a tenant credential"))
			return
		}
		res := resourceName(req.Tenant, coll)
		if !s.allowed(ctx, req) {
			chain := req.Tenant.String()
			if req.ActAs {
				chain = controlChain
			}
			s.deny(w, r, chain, p, action, res, forbidden("the policy does not allow "+action+" for this credential"))
			return
		}
		r = r.WithContext(tenant.WithID(ctx, req.Tenant))
		if !req.ActAs && !tenantAudited[action] {
			h(w, r)
			return
		}
		rec := &telemetry.StatusRecorder{ResponseWriter: w}
		h(rec, r)
		s.record(r, req.Tenant.String(), p, action, res, outcome(rec))
	}
}

// tenantAudited are tenant self-service actions always audited on the
// tenant's chain.
var tenantAudited = map[string]bool{"key.manage": true, "record.export": true}

// allowed asks the policy; an error (a request the model cannot express)
// is a denial.
func (s *Server) allowed(ctx context.Context, r policy.Request) bool {
	d, err := s.policy.Authorize(ctx, r)
	return err == nil && d.Allow
}

// deny answers a refused request with err and audits the refusal (only
// 401 and 403 answers are audited: an internal failure is not a decision).
func (s *Server) deny(w http.ResponseWriter, r *http.Request, chain string, p principal, action, res string, err error) {
	e, ok := toAPIError(err)
	if ok && (e.status == http.StatusUnauthorized || e.status == http.StatusForbidden) {
		s.record(r, chain, p, action, res, "deny:"+e.code)
	}
	s.writeError(w, r, err)
}

// outcome is the audit decision of an allowed request: "allow", with the
// status when the handler failed.
func outcome(rec *telemetry.StatusRecorder) string {
	if st := rec.Status(); st >= 400 {
		return "allow:" + strconv.Itoa(st)
	}
	return "allow"
}

// resourceName names what a request acts on in the audit log.
func resourceName(id tenant.ID, collection string) string {
	if id.IsZero() {
		return ""
	}
	s := "tenant/" + id.String()
	if collection != "" {
		s += "/collections/" + collection
	}
	return s
}
