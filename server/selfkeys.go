package server

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Tenant self-service keys: /v1/keys. The tenant is the credential's (in
// the context); a key id of another tenant is 404 key_not_found, exactly
// like a missing one.

// listOwnKeys: GET /v1/keys → {"items":[key...]} (never tokens).
func (s *Server) listOwnKeys(w http.ResponseWriter, r *http.Request) error {
	id, err := tenant.FromContext(r.Context())
	if err != nil {
		return err
	}
	keys, err := s.catalog.ListKeys(r.Context(), id)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"items": keys})
	return nil
}

// createOwnKey: POST /v1/keys {"role","name"} → 201 with the token, shown
// once.
func (s *Server) createOwnKey(w http.ResponseWriter, r *http.Request) error {
	id, err := tenant.FromContext(r.Context())
	if err != nil {
		return err
	}
	return s.issueKey(w, r, id)
}

// revokeOwnKey: DELETE /v1/keys/{key_id} (204).
func (s *Server) revokeOwnKey(w http.ResponseWriter, r *http.Request) error {
	id, err := tenant.FromContext(r.Context())
	if err != nil {
		return err
	}
	if err := s.catalog.RevokeKey(r.Context(), id, r.PathValue("key_id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
