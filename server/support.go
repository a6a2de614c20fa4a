package server

import (
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
)

// NewAgent is a freshly created support agent with its token, shown once.
type NewAgent struct {
	catalog.Agent
	Token string `json:"token"`
}

// createAgent: POST /v1/admin/support-agents {"name"} → 201 with the
// token bks_…, shown this once.
func (s *Server) createAgent(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	a, token, err := s.catalog.CreateAgent(r.Context(), req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusCreated, NewAgent{Agent: a, Token: token})
}

// revokeAgent: DELETE /v1/admin/support-agents/{agent_id} (204), effective
// on the agent's next request on every instance.
func (s *Server) revokeAgent(w http.ResponseWriter, r *http.Request) {
	if err := s.catalog.RevokeAgent(r.Context(), r.PathValue("agent_id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// createGrant: POST /v1/admin/tenants/{id}/grants {"agent_id","reason",
// "expires_in" (a Go duration, e.g. "2h") or "expires_at" (RFC 3339)} →
// 201 with the grant. Reason and expiry are required; the expiry is at most
// catalog.MaxGrantDuration ahead.
func (s *Server) createGrant(w http.ResponseWriter, r *http.Request) {
	id, err := pathTenant(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		AgentID   string     `json:"agent_id"`
		Reason    string     `json:"reason"`
		ExpiresIn string     `json:"expires_in"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	var until time.Time
	switch {
	case req.ExpiresIn != "" && req.ExpiresAt != nil:
		s.writeError(w, r, newError(http.StatusBadRequest, "invalid_grant", "send expires_in or expires_at, not both"))
		return
	case req.ExpiresIn != "":
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil {
			s.writeError(w, r, newError(http.StatusBadRequest, "invalid_grant", `expires_in must be a duration such as "30m" or "4h"`))
			return
		}
		until = s.now().Add(d)
	case req.ExpiresAt != nil:
		until = *req.ExpiresAt
	default:
		s.writeError(w, r, newError(http.StatusBadRequest, "invalid_grant", "a grant needs an expiry: expires_in or expires_at (at most 24h ahead)"))
		return
	}
	if req.Reason == "" {
		s.writeError(w, r, newError(http.StatusBadRequest, "invalid_grant", "a grant needs a reason (for example a ticket reference)"))
		return
	}
	g, err := s.catalog.CreateGrant(r.Context(), id, req.AgentID, req.Reason, until)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The tenant's own chain shows who may read its data, and why.
	s.record(r, id.String(), operatorPrincipal, "grant.create",
		"tenant/"+id.String()+"/grants/"+g.ID, "allow")
	s.writeJSON(w, r, http.StatusCreated, g)
}

// listGrants: GET /v1/admin/tenants/{id}/grants → {"items":[grant...]}.
func (s *Server) listGrants(w http.ResponseWriter, r *http.Request) {
	id, ok := s.existingTenant(w, r)
	if !ok {
		return
	}
	gs, err := s.catalog.ListGrants(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"items": gs})
}

// revokeGrant: DELETE /v1/admin/tenants/{id}/grants/{grant_id} (204),
// effective on the agent's next request on every instance.
func (s *Server) revokeGrant(w http.ResponseWriter, r *http.Request) {
	id, err := pathTenant(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	gid := r.PathValue("grant_id")
	if err := s.catalog.RevokeGrant(r.Context(), id, gid); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.record(r, id.String(), operatorPrincipal, "grant.revoke",
		"tenant/"+id.String()+"/grants/"+clip(gid), "allow")
	w.WriteHeader(http.StatusNoContent)
}

// now is the server's clock.
func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}
