package dashboard

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/health"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// The JSON API under <prefix>/api/: what the page reads. Every answer
// needs a live session (401 problem otherwise) and is Cache-Control
// no-store. It holds ids, names, tiers, placements, counts, rates and
// latencies: never a record, never a credential.

// Figures are a tenant's last-minute health as the fleet table shows it.
type Figures struct {
	RequestsPerMin float64   `json:"requests_per_min"`
	Requests       int64     `json:"requests"`
	Errors         int64     `json:"errors"`
	ErrorRate      float64   `json:"error_rate"`
	P50Ms          float64   `json:"p50_ms"`
	P99Ms          float64   `json:"p99_ms"`
	Throttled      int64     `json:"throttled"`
	Queued         int64     `json:"queued"`
	LastSeen       time.Time `json:"last_seen"`
}

// Quota is a tenant's storage quota (0: none).
type Quota struct {
	MaxRecords int64 `json:"max_records"`
	MaxBytes   int64 `json:"max_bytes"`
}

// FleetTenant is one row of the fleet table.
type FleetTenant struct {
	ID     tenant.ID    `json:"id"`
	Name   string       `json:"name"`
	Tier   string       `json:"tier"`
	State  string       `json:"state"`
	Shard  string       `json:"shard"`
	Mode   string       `json:"mode"`
	Health *Figures     `json:"health"` // nil: no requests lately
	Flags  []Flag       `json:"flags"`
	Usage  *store.Usage `json:"usage"` // nil: not known yet
	Quota  *Quota       `json:"quota"` // nil: no limits source
}

// Fleet is the answer of GET <prefix>/api/fleet: every tenant, flagged
// ones first, then by id.
type Fleet struct {
	Tenants   []FleetTenant `json:"tenants"`
	Flagged   int           `json:"flagged"`
	Truncated bool          `json:"truncated"`
	At        time.Time     `json:"at"`
}

// TopTenant is one line of a top-tenants panel.
type TopTenant struct {
	ID      tenant.ID `json:"id"`
	Name    string    `json:"name"`
	Figures Figures   `json:"health"`
	Flags   []Flag    `json:"flags"`
}

// Top is the answer of GET <prefix>/api/top: the tenants with the most
// requests and the most errors in the last minute.
type Top struct {
	ByRequests []TopTenant `json:"by_requests"`
	ByErrors   []TopTenant `json:"by_errors"`
}

// TenantDetail is the answer of GET <prefix>/api/tenants/{id}.
type TenantDetail struct {
	FleetTenant
	CreatedAt time.Time      `json:"created_at"`
	Limits    *limits.Limits `json:"limits"`
	Windows   []Window       `json:"windows"`
	Series    []Point        `json:"series"`
}

// AuditEntry is one privileged action in the audit panel.
type AuditEntry struct {
	Chain     string    `json:"chain"`
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Principal string    `json:"principal"`
	Action    string    `json:"action"`
	Resource  string    `json:"resource"`
	Decision  string    `json:"decision"`
	RequestID string    `json:"request_id"`
}

// topN is how many tenants each top panel lists.
const topN = 10

func (d *Dashboard) api(w http.ResponseWriter, r *http.Request, rest string) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		d.problem(w, http.StatusMethodNotAllowed, "method_not_allowed", "the dashboard API is read-only: use GET")
		return
	}
	if _, ok := d.session(r); !ok {
		d.problem(w, http.StatusUnauthorized, "unauthenticated", "sign in to the dashboard first")
		return
	}
	var v any
	var err error
	switch {
	case rest == "fleet":
		v, err = d.fleet(r)
	case rest == "top":
		v, err = d.top(r)
	case rest == "audit":
		v, err = d.auditPanel(r)
	case strings.HasPrefix(rest, "tenants/"):
		v, err = d.tenant(r, strings.TrimPrefix(rest, "tenants/"))
	default:
		d.problem(w, http.StatusNotFound, "route_not_found", "no such dashboard API")
		return
	}
	if err != nil {
		var pe *problem.Error
		if errors.As(err, &pe) {
			problem.Write(w, pe)
			return
		}
		d.cfg.Logger.LogAttrs(r.Context(), slog.LevelError, "dashboard api", slog.String("api", rest), slog.String("error", err.Error()))
		d.problem(w, http.StatusInternalServerError, "internal", "the dashboard could not read what it shows; see the server log")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		d.cfg.Logger.Debug("dashboard api: write", slog.String("error", err.Error()))
	}
}

func (d *Dashboard) problem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Cache-Control", "no-store")
	problem.Write(w, problem.New(status, code, detail))
}

// figures turns a health window into the table's figures.
func figures(s Summary) *Figures {
	w := s.Window
	perMin := w.Rate * 60
	return &Figures{RequestsPerMin: perMin, Requests: w.Requests, Errors: w.Errors, ErrorRate: w.ErrorRate,
		P50Ms: w.P50Ms, P99Ms: w.P99Ms, Throttled: w.Throttled, Queued: w.Queued, LastSeen: s.Last}
}

// row makes a tenant's fleet row; h is its health summary, if any.
func (d *Dashboard) row(r *http.Request, t catalog.Tenant, h *Summary) FleetTenant {
	ft := FleetTenant{ID: t.ID, Name: t.Name, Tier: t.Tier, State: string(t.State),
		Shard: t.Placement.Shard, Mode: string(t.Placement.Mode), Flags: []Flag{}}
	if h != nil {
		ft.Health = figures(*h)
		if h.Flags != nil {
			ft.Flags = h.Flags
		}
	}
	if d.cfg.Usage != nil {
		if u, ok := d.cfg.Usage.Usage(t.ID); ok {
			ft.Usage = &u
		}
	}
	if d.cfg.Limits != nil && (t.State == catalog.Active || t.State == catalog.Suspended) {
		if l, err := d.cfg.Limits.For(r.Context(), t.ID); err == nil {
			ft.Quota = &Quota{MaxRecords: l.MaxRecords, MaxBytes: l.MaxBytes}
		}
	}
	return ft
}

func (d *Dashboard) fleet(r *http.Request) (Fleet, error) {
	hs := map[tenant.ID]*Summary{}
	if d.cfg.Health != nil {
		all := d.cfg.Health.Fleet()
		for i := range all {
			hs[all[i].Tenant] = &all[i]
		}
	}
	out := Fleet{Tenants: []FleetTenant{}, At: d.cfg.Now().UTC()}
	after := ""
	for len(out.Tenants) < MaxFleet {
		page, err := d.cfg.Tenants.ListTenants(r.Context(), after, 1000)
		if err != nil {
			return Fleet{}, err
		}
		for _, t := range page {
			if len(out.Tenants) == MaxFleet {
				out.Truncated = true
				break
			}
			ft := d.row(r, t, hs[t.ID])
			if len(ft.Flags) > 0 {
				out.Flagged++
			}
			out.Tenants = append(out.Tenants, ft)
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].ID.String()
	}
	// Flagged tenants first (most flags first), the rest in id order.
	flagged := make([]FleetTenant, 0, out.Flagged)
	rest := make([]FleetTenant, 0, len(out.Tenants)-out.Flagged)
	for _, t := range out.Tenants {
		if len(t.Flags) > 0 {
			flagged = append(flagged, t)
		} else {
			rest = append(rest, t)
		}
	}
	out.Tenants = append(flagged, rest...)
	return out, nil
}

func (d *Dashboard) top(r *http.Request) (Top, error) {
	out := Top{ByRequests: []TopTenant{}, ByErrors: []TopTenant{}}
	if d.cfg.Health == nil {
		return out, nil
	}
	names := map[tenant.ID]string{}
	list := func(by health.Order) []TopTenant {
		ts := []TopTenant{}
		for _, s := range d.cfg.Health.Top(by, topN) {
			if by == health.ByErrors && s.Window.Errors == 0 {
				continue
			}
			name, ok := names[s.Tenant]
			if !ok {
				if t, err := d.cfg.Tenants.Tenant(r.Context(), s.Tenant); err == nil {
					name = t.Name
				}
				names[s.Tenant] = name
			}
			flags := s.Flags
			if flags == nil {
				flags = []Flag{}
			}
			ts = append(ts, TopTenant{ID: s.Tenant, Name: name, Figures: *figures(s), Flags: flags})
		}
		return ts
	}
	out.ByRequests, out.ByErrors = list(health.ByRequests), list(health.ByErrors)
	return out, nil
}

func (d *Dashboard) tenant(r *http.Request, raw string) (TenantDetail, error) {
	id, err := tenant.Parse(raw)
	if err != nil {
		return TenantDetail{}, problem.New(http.StatusBadRequest, "invalid_tenant_id", err.Error())
	}
	t, err := d.cfg.Tenants.Tenant(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		return TenantDetail{}, problem.New(http.StatusNotFound, "tenant_not_found", "no such tenant")
	}
	if err != nil {
		return TenantDetail{}, err
	}
	out := TenantDetail{CreatedAt: t.CreatedAt, Windows: []Window{}, Series: []Point{}}
	var h *Summary
	if d.cfg.Health != nil {
		if rep, ok := d.cfg.Health.Tenant(id); ok {
			h = &rep.Summary
			if rep.Windows != nil {
				out.Windows = rep.Windows
			}
			if rep.Series != nil {
				out.Series = rep.Series
			}
		}
	}
	out.FleetTenant = d.row(r, t, h)
	if d.cfg.Limits != nil && out.Quota != nil {
		if l, err := d.cfg.Limits.For(r.Context(), id); err == nil {
			out.Limits = &l
		}
	}
	return out, nil
}

// auditLimit bounds ?limit= of the audit panel.
const auditLimit = 200

func (d *Dashboard) auditPanel(r *http.Request) (map[string]any, error) {
	n := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > auditLimit {
			return nil, problem.New(http.StatusBadRequest, "invalid_limit", "limit must be an integer from 1 to "+strconv.Itoa(auditLimit))
		}
	}
	items := []AuditEntry{}
	if d.cfg.Audit != nil {
		es, err := d.cfg.Audit.Recent(r.Context(), n, "operator", "support")
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			items = append(items, AuditEntry{Chain: e.Chain, Seq: e.Seq, Time: e.Time, Principal: e.Principal,
				Action: e.Action, Resource: e.Resource, Decision: e.Decision, RequestID: e.RequestID})
		}
	}
	return map[string]any{"items": items}, nil
}
