package server

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// setIssuers: PUT /v1/admin/tenants/{id}/issuers with a JSON list of
// catalog.Issuer → 200 with the stored list (defaults filled in).
func (s *Server) setIssuers(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	var list []catalog.Issuer
	if err := decodeJSON(r, &list); err != nil {
		return err
	}
	if err := s.catalog.SetIssuers(r.Context(), id, list); err != nil {
		return err
	}
	return s.issuers(w, r, id)
}

// getIssuers: GET /v1/admin/tenants/{id}/issuers → {"items":[issuer...]}.
func (s *Server) getIssuers(w http.ResponseWriter, r *http.Request) error {
	id, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	return s.issuers(w, r, id)
}

func (s *Server) issuers(w http.ResponseWriter, r *http.Request, id tenant.ID) error {
	list, err := s.catalog.Issuers(r.Context(), id)
	if err != nil {
		return err
	}
	if list == nil {
		list = []catalog.Issuer{}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"items": list})
	return nil
}
