package server

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// controlChain holds control-plane events and denials that name no tenant
// the caller may see.
const controlChain = audit.ControlChain

// auditPage reads ?after=&limit= for an audit listing.
func auditPage(q url.Values) (after int64, limit int, err error) {
	limit = audit.DefaultListLimit
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			return 0, 0, newError(http.StatusBadRequest, "invalid_cursor", "after must be the seq of the last entry seen (an integer ≥ 0)")
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > audit.MaxListLimit {
			return 0, 0, newError(http.StatusBadRequest, "invalid_limit", "limit must be an integer from 1 to "+strconv.Itoa(audit.MaxListLimit))
		}
	}
	return after, limit, nil
}

// listAudit answers a page of chain after seq from:
// {"items":[entry...],"next_after":N} (next_after 0 on the last page).
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, chain string, from int64) {
	after, limit, err := auditPage(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after = max(after, from)
	es, err := s.audit.List(r.Context(), chain, after, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if es == nil {
		es = []audit.Entry{}
	}
	var next int64
	if len(es) == limit {
		next = es[len(es)-1].Seq
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"items": es, "next_after": next})
}

// tenantAudit: GET /v1/audit — the caller's own tenant's chain (a tenant
// admin; the tenant comes from the credential), from the start of its
// current incarnation: an earlier tenant with the same id was another
// tenant, and its entries (before the last audit.OffboardAction) are
// for operators only (GET /v1/admin/audit?chain=).
func (s *Server) tenantAudit(w http.ResponseWriter, r *http.Request) error {
	id, err := tenant.FromContext(r.Context())
	if err != nil {
		return err
	}
	from, err := s.audit.IncarnationStart(r.Context(), id.String())
	if err != nil {
		return err
	}
	s.listAudit(w, r, id.String(), from)
	return nil
}

// adminAudit: GET /v1/admin/audit?chain= — any chain (default the control
// plane's).
func (s *Server) adminAudit(w http.ResponseWriter, r *http.Request) error {
	chain := r.URL.Query().Get("chain")
	if chain == "" {
		chain = controlChain
	} else if chain != controlChain {
		if _, err := tenant.Parse(chain); err != nil {
			return err
		}
	}
	s.listAudit(w, r, chain, 0)
	return nil
}
