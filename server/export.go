package server

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/export"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/receipt"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Exports (package export) and offboarding receipts (package receipt).

// receiptKeyFile holds the seed of the server's Ed25519 receipt key.
const receiptKeyFile = "receipt.key"

// exportOwn: GET /v1/export?after= — the caller's own tenant (a tenant
// admin). The gate does not hold the stream for its audit entry: the
// export is recorded on the tenant's chain before its first byte.
func (s *Server) exportOwn(w http.ResponseWriter, r *http.Request) error {
	return s.exporter("record.export").Serve(w, r)
}

// exportTenant: GET /v1/admin/tenants/{id}/export?after= — the operator's
// export of the tenant in the path, recorded on the control chain and on
// the tenant's own.
func (s *Server) exportTenant(w http.ResponseWriter, r *http.Request) error {
	id, err := s.existingTenant(r)
	if err != nil {
		return err
	}
	return s.exporter("tenant.export").Serve(w, r.WithContext(tenant.WithID(r.Context(), id)))
}

func (s *Server) exporter(action string) *export.Handler {
	return &export.Handler{Router: s.router, WriteTimeout: time.Minute,
		Started: func(r *http.Request, after export.Position) error {
			id, err := tenant.FromContext(r.Context())
			if err != nil {
				return err
			}
			p, _ := ingress.FromContext(r.Context())
			res := ingress.ResourceName(id, "")
			if !after.IsZero() {
				res += " after " + after.String()
			}
			if p.Kind == ingress.KindOperator {
				err = s.record(r, controlChain, p, action, res, "allow")
			}
			if err == nil {
				err = s.record(r, id.String(), p, action, res, "allow")
			}
			var d *ingress.Denial
			if errors.As(err, &d) { // 503 audit_unavailable: nothing is sent without its entry
				return ingress.DenialProblem(d)
			}
			return err
		}}
}

// receiptKey: GET /v1/admin/receipt-key — the public key receipts are
// checked with.
func (s *Server) receiptKey(w http.ResponseWriter, r *http.Request) error {
	pub := s.receiptSigner.Public().(ed25519.PublicKey)
	s.writeJSON(w, r, http.StatusOK, map[string]string{"algorithm": "Ed25519",
		"public_key": receipt.EncodePublicKey(pub), "key_id": receipt.KeyID(pub)})
	return nil
}

// offboardTenant: POST /v1/admin/tenants/{id}/offboard {"export_sha256",
// "export_records"} deletes the tenant as DELETE does and answers the
// signed receipt (200). An export whose record count is not the tenant's
// (409 export_mismatch) deletes nothing.
func (s *Server) offboardTenant(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	var req struct {
		SHA256  string `json:"export_sha256"`
		Records *int64 `json:"export_records"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if !receipt.ValidSHA256(req.SHA256) || req.Records == nil || *req.Records < 0 {
		return newError(http.StatusBadRequest, "invalid_export",
			"export_sha256 must be the export's SHA-256 in lowercase hex and export_records its number of records (≥ 0)")
	}
	t, err := s.catalog.Tenant(r.Context(), id)
	if err != nil {
		return err
	}
	n, err := export.Count(tenant.WithID(r.Context(), id), s.router)
	if err != nil {
		return err
	}
	if n.Total != *req.Records {
		return newError(http.StatusConflict, "export_mismatch", fmt.Sprintf("the export holds %d records but the tenant %d; "+
			"nothing was deleted: export it again (suspend it first so that it does not change)", *req.Records, n.Total))
	}
	keys, err := s.offboard(r, id)
	if err != nil {
		return err
	}
	rc := receipt.Receipt{Version: receipt.Version, Tenant: id.String(), DeletedAt: s.now().UTC(),
		Collections: n.Collections, Records: n.Total, Export: receipt.Export{SHA256: req.SHA256, Records: *req.Records},
		DestroyedKeys: keys}
	if !t.CreatedAt.IsZero() {
		rc.TenantCreatedAt = &t.CreatedAt
	}
	signed, err := receipt.Sign(s.receiptSigner, rc)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, signed)
	return nil
}

// offboard deletes tenant id (DELETE /v1/admin/tenants/{id}, and
// offboardTenant): the entry that closes its audit chain, then the fleet's
// offboarding, which destroys the tenant's encryption keys before it drops
// the data (crypto-shredding) and returns their ids. If the entry cannot
// be written, nothing is deleted.
func (s *Server) offboard(r *http.Request, id tenant.ID) (keys []string, err error) {
	p, _ := ingress.FromContext(r.Context())
	if err := s.record(r, id.String(), p, audit.OffboardAction, ingress.ResourceName(id, ""), "allow"); err != nil {
		return nil, err
	}
	if keys, err = s.fleet.OffboardShredding(r.Context(), id); err != nil {
		return nil, err
	}
	if keys == nil {
		keys = []string{}
	}
	s.tracked.remove(id) // its usage gauges go at once, not at the next sweep
	s.forgetTenant(id)   // its health and metric labels too
	return keys, nil
}
