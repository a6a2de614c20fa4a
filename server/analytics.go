package server

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/analytics"
	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/ingress"
)

// Analytics: the operator creates analysts with a privacy budget; an
// analyst's token (bka_…) reaches only POST /v1/analytics/query, which
// answers noisy, k-thresholded aggregates across tenants (package
// analytics). The operator cannot query: an analyst is the accountable
// principal whose budget every query spends.

// newAnalytics builds the query engine on the catalog (tenants, budgets)
// and the router (each tenant read in its own context).
func (s *Server) newAnalytics() (*analytics.Engine, error) {
	return analytics.New(analytics.Options{Tenants: s.catalog, Budget: s.catalog, Store: s.router, K: s.opts.AnalyticsMinTenants})
}

// NewAnalyst is a freshly created analyst with its token, shown once.
type NewAnalyst struct {
	catalog.Analyst
	Token string `json:"token"`
}

// createAnalyst: POST /v1/admin/analysts {"name","budget"} → 201 with the
// token bka_…, shown this once. The budget is the total ε the analyst may
// spend.
func (s *Server) createAnalyst(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name   string  `json:"name"`
		Budget float64 `json:"budget"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	budget, err := analytics.EpsilonOf(req.Budget)
	if err != nil {
		return newError(http.StatusBadRequest, "invalid_budget", "budget: "+err.Error())
	}
	a, token, err := s.catalog.CreateAnalyst(r.Context(), req.Name, budget)
	if err != nil {
		return err
	}
	ingress.SetResource(r.Context(), "analysts/"+a.ID)
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusCreated, NewAnalyst{Analyst: a, Token: token})
	return nil
}

// listAnalysts: GET /v1/admin/analysts → every analyst with its budget,
// spent and remaining ε (never a token).
func (s *Server) listAnalysts(w http.ResponseWriter, r *http.Request) error {
	ingress.SetResource(r.Context(), "analysts")
	list, err := s.catalog.ListAnalysts(r.Context())
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"items": list})
	return nil
}

// revokeAnalyst: DELETE /v1/admin/analysts/{analyst_id} (204), effective
// on the analyst's next request on every instance.
func (s *Server) revokeAnalyst(w http.ResponseWriter, r *http.Request) error {
	ingress.SetResource(r.Context(), "analysts/"+r.PathValue("analyst_id"))
	if err := s.catalog.RevokeAnalyst(r.Context(), r.PathValue("analyst_id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// analyticsQuery: POST /v1/analytics/query with an analytics.Query → the
// groups backed by at least K tenants with their noisy values, the ε spent
// and the budget left. The audit entry names the query's shape and ε,
// never its answer.
func (s *Server) analyticsQuery(w http.ResponseWriter, r *http.Request) error {
	var q analytics.Query
	if err := decodeJSON(r, &q); err != nil {
		return err
	}
	ingress.SetResource(r.Context(), analytics.Describe(q))
	p, _ := ingress.FromContext(r.Context())
	res, err := s.analytics.Run(r.Context(), p.ID, q)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, res)
	return nil
}
