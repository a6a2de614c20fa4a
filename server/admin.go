package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// The control plane. Every handler here runs behind operatorOnly. It acts
// on the tenant named in the path, explicitly: the only place where a path
// names a tenant.

// TenantView is a tenant as the control plane shows it; Usage, Limits
// and Overrides are set by the show endpoint only (Limits and Overrides
// also by update).
type TenantView struct {
	catalog.Tenant
	Usage *Usage `json:"usage,omitempty"`
	// Limits are the tenant's effective limits (tier, catalog overrides,
	// limits file).
	Limits *limits.Limits `json:"limits,omitempty"`
	// Overrides are the tenant's overrides stored in the catalog.
	Overrides *limits.Overrides `json:"overrides,omitempty"`
	// Retention is the tenant's retention rules, collection → maximum age
	// (show, and update when it changed them).
	Retention catalog.Retention `json:"retention,omitempty"`
	// Events is the tenant's event settings (show, and update when it
	// changed them).
	Events *catalog.EventSettings `json:"events,omitempty"`
}

// Usage is what a tenant stores.
type Usage struct {
	Collections int   `json:"collections"`
	Records     int64 `json:"records"`
	// Bytes is the size of the tenant's record data, as its quota counts it.
	Bytes int64 `json:"bytes"`
}

// NewKey is a freshly issued key with its token, shown this once.
type NewKey struct {
	catalog.Key
	Token string `json:"token"`
}

// decodeJSON reads the body into v: one JSON object with only known fields.
func decodeJSON(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return newError(http.StatusBadRequest, "invalid_json", "the body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF) {
			return newError(http.StatusBadRequest, "invalid_json", "the body is not valid JSON")
		}
		// Type mismatches and unknown fields: json's message names the field.
		return newError(http.StatusBadRequest, "invalid_json", "the body does not fit the request: "+err.Error())
	}
	if dec.More() {
		return newError(http.StatusBadRequest, "invalid_json", "the body holds more than one JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return newError(http.StatusBadRequest, "invalid_json", "the body holds more than one JSON value")
	}
	return nil
}

// pathTenant parses the {id} path segment.
func pathTenant(r *http.Request) (tenant.ID, error) {
	return tenant.Parse(r.PathValue("id"))
}

// existingTenant parses the {id} path segment and checks that the tenant
// exists (400 invalid id, 404 tenant_not_found otherwise).
func (s *Server) existingTenant(r *http.Request) (tenant.ID, error) {
	id, err := pathTenant(r)
	if err == nil {
		_, err = s.catalog.Tenant(r.Context(), id)
	}
	return id, err
}

// createTenant: POST /v1/admin/tenants {"id","name","isolation","tier","shard"}.
// The fleet checks the input, places the tenant (the mode asked for, else
// pooled; the shard asked for, else the one with the fewest tenants) and
// provisions it.
func (s *Server) createTenant(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		ID        string  `json:"id"`
		Name      *string `json:"name"`
		Isolation *string `json:"isolation"`
		Tier      *string `json:"tier"`
		Shard     *string `json:"shard"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.ID != "" {
		ingress.SetResource(r.Context(), "tenant/"+req.ID) // escaped and bounded by the gate
	}
	t, err := s.fleet.Create(r.Context(), fleet.Spec{ID: req.ID, Name: req.Name, Tier: req.Tier,
		Isolation: req.Isolation, Shard: req.Shard})
	if errors.Is(err, fleet.ErrInvalidShard) && !errors.Is(err, fleet.ErrPlacement) {
		// The shard asked for is empty or unknown (not a rule's mistake).
		err = newError(http.StatusBadRequest, "invalid_shard", err.Error())
	}
	if err != nil {
		return err
	}
	// The new incarnation opens its own chain (audit.BeginAction).
	p, _ := ingress.FromContext(r.Context())
	if err := s.record(r, t.ID.String(), p, audit.BeginAction, ingress.ResourceName(t.ID, ""), "allow"); err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/admin/tenants/"+t.ID.String())
	s.writeJSON(w, r, http.StatusCreated, TenantView{Tenant: t})
	return nil
}

// listTenants: GET /v1/admin/tenants?limit=&cursor= (by id; the cursor is
// the last id of the page, base64url-encoded — the list is operator-only,
// so it needs no authentication of its own).
func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return newError(http.StatusBadRequest, "invalid_limit", "the query string is malformed")
	}
	limit := store.DefaultLimit
	if vs, ok := q["limit"]; ok {
		n, err := strconv.Atoi(vs[0])
		if len(vs) != 1 || err != nil || n < 1 || n > store.MaxLimit {
			return newError(http.StatusBadRequest, "invalid_limit",
				"limit must be one integer from 1 to "+strconv.Itoa(store.MaxLimit))
		}
		limit = n
	}
	var after string
	if vs, ok := q["cursor"]; ok {
		b, err := base64.RawURLEncoding.DecodeString(vs[0])
		if err == nil {
			_, err = tenant.Parse(string(b))
		}
		if len(vs) != 1 || err != nil {
			return store.ErrInvalidCursor
		}
		after = string(b)
	}
	ts, err := s.catalog.ListTenants(r.Context(), after, limit+1)
	if err != nil {
		return err
	}
	next := ""
	if len(ts) > limit {
		ts = ts[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(ts[limit-1].ID.String()))
	}
	items := make([]TenantView, len(ts))
	for i, t := range ts {
		items[i] = TenantView{Tenant: t}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"items": items, "next_cursor": next})
	return nil
}

// showTenant: GET /v1/admin/tenants/{id}, with usage read through the
// router in a context that names this tenant — the control plane's
// explicit act on one tenant.
func (s *Server) showTenant(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	t, err := s.catalog.Tenant(r.Context(), id)
	if err != nil {
		return err
	}
	view := TenantView{Tenant: t}
	if err := s.addLimits(r.Context(), &view); err != nil {
		return err
	}
	if view.Retention, err = s.catalog.Retention(r.Context(), id); err != nil {
		return err
	}
	es, err := s.catalog.EventSettings(r.Context(), id)
	if err != nil {
		return err
	}
	view.Events = &es
	ctx := tenant.WithID(r.Context(), id)
	u, err := s.tenantUsage(ctx)
	switch {
	case err == nil:
		view.Usage = &u
	case errors.Is(err, store.ErrUnknownTenant):
		// Provisioning or being deleted: no usage to show.
	default:
		return err
	}
	s.writeJSON(w, r, http.StatusOK, view)
	return nil
}

// updateTenant: PATCH /v1/admin/tenants/{id} {"name"?, "tier"?, "limits"?,
// "retention"?}. "limits" replaces the tenant's stored overrides as a whole
// ({} removes them); invalid ones are refused with 400 invalid_limits
// before anything changes. "retention" changes the rules of the
// collections it names ({"<collection>": "<duration>"}, "" or null removes
// one; 400 invalid_retention for a bad one, and nothing changes).
// "events" replaces the tenant's event settings ({"data": true|false};
// 400 invalid_events for anything else, and nothing changes).
func (s *Server) updateTenant(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	var req struct {
		Name      *string         `json:"name"`
		Tier      *string         `json:"tier"`
		Limits    json.RawMessage `json:"limits"`
		Retention json.RawMessage `json:"retention"`
		Events    json.RawMessage `json:"events"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var rules catalog.Retention
	if req.Retention != nil {
		if rules, err = catalog.ParseRetention(req.Retention); err != nil {
			return err
		}
	}
	var events *catalog.EventSettings
	if req.Events != nil {
		es, err := catalog.ParseEventSettings(req.Events)
		if err != nil {
			return err
		}
		events = &es
	}
	var overrides *limits.Overrides
	if req.Limits != nil {
		o, err := limits.ParseOverrides(req.Limits)
		if err != nil {
			return newError(http.StatusBadRequest, "invalid_limits", err.Error())
		}
		overrides = &o
	}
	if req.Name != nil {
		if err := catalog.ValidName(*req.Name); err != nil {
			return err
		}
	}
	if req.Tier != nil {
		if err := catalog.ValidTier(*req.Tier); err != nil {
			return err
		}
	}
	// One transaction: a tier and limits sent together change together
	// or not at all.
	t, err := s.catalog.UpdateTenant(r.Context(), id, catalog.TenantUpdate{Name: req.Name, Tier: req.Tier, Limits: overrides, Retention: rules,
		Events: events})
	if err != nil {
		return err
	}
	view := TenantView{Tenant: t, Events: events}
	if rules != nil {
		if view.Retention, err = s.catalog.Retention(r.Context(), id); err != nil {
			return err
		}
	}
	if overrides != nil {
		if err := s.addLimits(r.Context(), &view); err != nil {
			return err
		}
	}
	s.writeJSON(w, r, http.StatusOK, view)
	return nil
}

// addLimits sets the view's effective limits and stored overrides. A
// tenant that is provisioning or being deleted has none to show.
func (s *Server) addLimits(ctx context.Context, v *TenantView) error {
	o, err := s.catalog.Limits(ctx, v.ID)
	if err != nil {
		return err
	}
	v.Overrides = &o
	if v.State != catalog.Active && v.State != catalog.Suspended {
		return nil
	}
	l, err := s.limits.For(ctx, v.ID)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	v.Limits = &l
	return nil
}

// suspendTenant and resumeTenant: POST .../suspend and .../resume. Asking
// for the state a tenant is already in is not an error.
func (s *Server) suspendTenant(w http.ResponseWriter, r *http.Request) error {
	return s.setState(w, r, s.fleet.Suspend)
}

func (s *Server) resumeTenant(w http.ResponseWriter, r *http.Request) error {
	return s.setState(w, r, s.fleet.Resume)
}

func (s *Server) setState(w http.ResponseWriter, r *http.Request,
	change func(context.Context, tenant.ID) (catalog.Tenant, error)) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	t, err := change(r.Context(), id)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, TenantView{Tenant: t})
	return nil
}

// deleteTenant: DELETE /v1/admin/tenants/{id} offboards the tenant: keys
// revoked, data dropped, entry removed (204). The tenant's audit chain
// first gets the entry that closes this incarnation (audit.OffboardAction):
// a tenant created again with the id does not see what came before it.
// If that entry cannot be written, nothing is offboarded.
func (s *Server) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	id, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	if _, err := s.offboard(r, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// createKey: POST /v1/admin/tenants/{id}/keys {"role","name"} → 201 with
// the token, shown this once.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	return s.issueKey(w, r, id)
}

// issueKey reads {"role","name"} and issues a key for tenant id, answering
// 201 with the token, shown this once. The control plane (path tenant) and
// tenant admins (their own tenant, /v1/keys) share it.
func (s *Server) issueKey(w http.ResponseWriter, r *http.Request, id tenant.ID) error {
	var req struct {
		Role string  `json:"role"`
		Name *string `json:"name"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	role, err := catalog.ParseRole(req.Role)
	if err != nil {
		return err
	}
	name := string(role)
	if req.Name != nil {
		name = *req.Name
	}
	if err := catalog.ValidName(name); err != nil {
		return err
	}
	key, token, err := s.catalog.CreateKey(r.Context(), id, role, name)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusCreated, NewKey{Key: key, Token: token})
	return nil
}

// listKeys: GET /v1/admin/tenants/{id}/keys (metadata only, never tokens).
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) error {
	id, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	keys, err := s.catalog.ListKeys(r.Context(), id)
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []catalog.Key{}
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"items": keys})
	return nil
}

// revokeKey: DELETE /v1/admin/tenants/{id}/keys/{key_id}, effective on the
// next request (204).
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	keyID := r.PathValue("key_id")
	if keyID == "" || len(keyID) > 128 {
		return catalog.ErrKeyNotFound
	}
	if err := s.catalog.RevokeKey(r.Context(), id, keyID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
