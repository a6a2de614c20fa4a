package server

import (
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/ingress"
)

// NewAgent is a freshly created support agent with its token, shown once.
type NewAgent struct {
	catalog.Agent
	Token string `json:"token"`
}

// createAgent: POST /v1/admin/support-agents {"name"} → 201 with the
// token bks_…, shown this once.
func (s *Server) createAgent(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	a, token, err := s.catalog.CreateAgent(r.Context(), req.Name)
	if err != nil {
		return err
	}
	ingress.SetResource(r.Context(), "support-agents/"+a.ID)
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusCreated, NewAgent{Agent: a, Token: token})
	return nil
}

// revokeAgent: DELETE /v1/admin/support-agents/{agent_id} (204), effective
// on the agent's next request on every instance.
func (s *Server) revokeAgent(w http.ResponseWriter, r *http.Request) error {
	ingress.SetResource(r.Context(), "support-agents/"+r.PathValue("agent_id"))
	if err := s.catalog.RevokeAgent(r.Context(), r.PathValue("agent_id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// createGrant: POST /v1/admin/tenants/{id}/grants {"agent_id","reason",
// "expires_in" (a Go duration, e.g. "2h") or "expires_at" (RFC 3339)} →
// 201 with the grant. Reason and expiry are required; the expiry is at most
// catalog.MaxGrantDuration ahead.
func (s *Server) createGrant(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	var req struct {
		AgentID   string     `json:"agent_id"`
		Reason    string     `json:"reason"`
		ExpiresIn string     `json:"expires_in"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var until time.Time
	switch {
	case req.ExpiresIn != "" && req.ExpiresAt != nil:
		return newError(http.StatusBadRequest, "invalid_grant", "send expires_in or expires_at, not both")
	case req.ExpiresIn != "":
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil {
			return newError(http.StatusBadRequest, "invalid_grant", `expires_in must be a duration such as "30m" or "4h"`)
		}
		until = s.now().Add(d)
	case req.ExpiresAt != nil:
		until = *req.ExpiresAt
	default:
		return newError(http.StatusBadRequest, "invalid_grant", "a grant needs an expiry: expires_in or expires_at (at most 24h ahead)")
	}
	if req.Reason == "" {
		return newError(http.StatusBadRequest, "invalid_grant", "a grant needs a reason (for example a ticket reference)")
	}
	g, err := s.catalog.CreateGrant(r.Context(), id, req.AgentID, req.Reason, until)
	if err != nil {
		return err
	}
	// The tenant's own chain shows who may read its data, and why.
	if err := s.record(r, id.String(), operatorPrincipal, "grant.create",
		"tenant/"+id.String()+"/grants/"+g.ID, "allow"); err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusCreated, g)
	return nil
}

// listGrants: GET /v1/admin/tenants/{id}/grants → {"items":[grant...]}.
func (s *Server) listGrants(w http.ResponseWriter, r *http.Request) error {
	id, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	gs, err := s.catalog.ListGrants(r.Context(), id)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"items": gs})
	return nil
}

// revokeGrant: DELETE /v1/admin/tenants/{id}/grants/{grant_id} (204),
// effective on the agent's next request on every instance.
func (s *Server) revokeGrant(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	gid := r.PathValue("grant_id")
	if err := s.catalog.RevokeGrant(r.Context(), id, gid); err != nil {
		return err
	}
	if err := s.record(r, id.String(), operatorPrincipal, "grant.revoke",
		"tenant/"+id.String()+"/grants/"+clip(gid), "allow"); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// now is the server's clock.
func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// listAgents: GET /v1/admin/support-agents → 200 {"items": [...]}, every
// support agent (revoked ones with revoked_at), oldest first; metadata
// only, never a token or its hash.
func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	ingress.SetResource(r.Context(), "support-agents")
	agents, err := s.catalog.ListAgents(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"items": agents})
	return nil
}
