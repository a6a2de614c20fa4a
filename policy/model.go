package policy

import (
	"errors"
	"fmt"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// ErrInvalidRequest reports a Request the engine cannot evaluate: an unknown
// principal kind or action, a tenant principal without a tenant or with a
// role other than admin, writer or reader. Authorize denies such requests
// and returns an error wrapping ErrInvalidRequest, so a wiring mistake is
// loud rather than silently allowed or denied.
var ErrInvalidRequest = errors.New("invalid authorization request")

// Principal kinds.
const (
	KindTenantKey  = "tenant_key"
	KindTenantUser = "tenant_user"
	KindOperator   = "operator"
	KindSupport    = "support"
	// KindAnalyst is an analyst: aggregate, noisy queries across tenants
	// (package analytics) and nothing else.
	KindAnalyst = "analyst"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	Kind   string    // "tenant_key", "tenant_user", "operator", "support", "analyst"
	ID     string    // key id, "iss|sub" for users, operator/support agent id
	Tenant tenant.ID // zero for operator, support and analysts
	Role   string    // tenant principals: "admin"|"writer"|"reader"; operators: "operator"; support: "support"; analysts: "analyst"
}

// Request is one authorization question: may Principal do Action on Tenant
// (and Collection)?
type Request struct {
	Principal  Principal
	Action     string    // one of Actions
	Tenant     tenant.ID // the tenant acted on (zero for fleet-wide control-plane actions like tenant.list/create)
	Collection string    // data-plane actions with a collection
	ActAs      bool      // support request with Bulkhead-Act-As-Tenant
	GrantLive  bool      // a live (unexpired, unrevoked) grant exists for (support agent, Tenant)
}

// Decision is the outcome of Authorize.
type Decision struct {
	Allow bool
	// Policies are the ids of the determining policies: the forbids that
	// matched for a deny, the permits that matched for an allow; empty for
	// a deny because nothing permitted the request.
	Policies []string
}

// Action groups. Every action belongs to exactly one; policies refer to a
// group with `action in Action::"data_plane"`.
const (
	GroupDataPlane    = "data_plane"
	GroupTenantAdmin  = "tenant_admin"
	GroupControlPlane = "control_plane"
	GroupAnalytics    = "analytics"
)

// Actions maps every action Bulkhead authorizes to its group.
var Actions = map[string]string{
	"record.read":     GroupDataPlane,
	"record.write":    GroupDataPlane,
	"record.delete":   GroupDataPlane,
	"collection.list": GroupDataPlane,
	"record.export":   GroupDataPlane,
	"event.read":      GroupDataPlane,
	"health.read":     GroupDataPlane,

	"key.manage": GroupTenantAdmin,
	"audit.read": GroupTenantAdmin,

	"tenant.create":  GroupControlPlane,
	"tenant.list":    GroupControlPlane,
	"tenant.read":    GroupControlPlane,
	"tenant.update":  GroupControlPlane,
	"tenant.suspend": GroupControlPlane,
	"tenant.resume":  GroupControlPlane,
	"tenant.delete":  GroupControlPlane,
	"tenant.export":  GroupControlPlane,
	"receipt.key":    GroupControlPlane,
	"key.create":     GroupControlPlane,
	"key.revoke":     GroupControlPlane,
	"key.list":       GroupControlPlane,
	"grant.create":   GroupControlPlane,
	"grant.list":     GroupControlPlane,
	"grant.revoke":   GroupControlPlane,
	"issuer.manage":  GroupControlPlane,
	"audit.read_all": GroupControlPlane,
	"support.manage": GroupControlPlane,
	"keys.manage":    GroupControlPlane,
	"job.read":       GroupControlPlane,
	"analyst.manage": GroupControlPlane,

	"analytics.query": GroupAnalytics,
}

// Cedar entity types of the model (see doc.go).
const (
	typeTenantKey  = types.EntityType("TenantKey")
	typeTenantUser = types.EntityType("TenantUser")
	typeOperator   = types.EntityType("Operator")
	typeSupport    = types.EntityType("Support")
	typeAnalyst    = types.EntityType("Analyst")
	typeTenant     = types.EntityType("Tenant")
	typeCollection = types.EntityType("Collection")
	typeFleet      = types.EntityType("Fleet")
	typeAction     = types.EntityType("Action")
	typeRole       = types.EntityType("Role")
)

// fleetUID is the resource of fleet-wide actions (no tenant).
var fleetUID = cedar.NewEntityUID(typeFleet, "fleet")

// Capability groups of the tenant roles: Action::"read" (reader and up),
// Action::"write" (writer and up), Action::"admin" (admin only). An action
// in a capability group is also in its plane group.
var capabilities = map[string]string{
	"record.read":     "read",
	"collection.list": "read",
	"event.read":      "read",
	"health.read":     "read",
	"record.write":    "write",
	"record.delete":   "write",
	"key.manage":      "admin",
	"audit.read":      "admin",
	"record.export":   "admin",
}

// actionEntities holds the action entities with their group parents; built
// once, shared read-only by every evaluation.
var actionEntities = func() map[string]types.Entity {
	m := make(map[string]types.Entity, len(Actions))
	for a, g := range Actions {
		parents := []types.EntityUID{cedar.NewEntityUID(typeAction, types.String(g))}
		if c := capabilities[a]; c != "" {
			parents = append(parents, cedar.NewEntityUID(typeAction, types.String(c)))
		}
		m[a] = types.Entity{
			UID:     cedar.NewEntityUID(typeAction, types.String(a)),
			Parents: cedar.NewEntityUIDSet(parents...),
		}
	}
	return m
}()

// roleParents are the Role groups a tenant principal of each role is in:
// roles nest, admin ⊃ writer ⊃ reader, so `principal in Role::"writer"`
// holds for writers and admins. Built once, shared read-only.
var roleParents = func() map[string]types.EntityUIDSet {
	role := func(r string) types.EntityUID { return cedar.NewEntityUID(typeRole, types.String(r)) }
	return map[string]types.EntityUIDSet{
		"reader": cedar.NewEntityUIDSet(role("reader")),
		"writer": cedar.NewEntityUIDSet(role("writer"), role("reader")),
		"admin":  cedar.NewEntityUIDSet(role("admin"), role("writer"), role("reader")),
	}
}()

// contexts are the four possible request contexts, built once.
var contexts = func() (c [2][2]types.Record) {
	for i, actAs := range []bool{false, true} {
		for j, live := range []bool{false, true} {
			c[i][j] = types.NewRecord(types.RecordMap{
				"act_as":     types.Boolean(actAs),
				"grant_live": types.Boolean(live),
			})
		}
	}
	return c
}()

// entities is the per-request entity store: the principal, the resource,
// the resource's tenant and the action. It is a tiny fixed array rather
// than a map, so building it allocates little.
type entities struct {
	list [4]types.Entity
	n    int
}

func (e *entities) add(ent types.Entity) { e.list[e.n] = ent; e.n++ }

// Get implements types.EntityGetter.
func (e *entities) Get(uid types.EntityUID) (types.Entity, bool) {
	for i := 0; i < e.n; i++ {
		if e.list[i].UID == uid {
			return e.list[i], true
		}
	}
	return types.Entity{}, false
}

func tenantUID(id tenant.ID) types.EntityUID {
	return cedar.NewEntityUID(typeTenant, types.String(id.String()))
}

// build turns r into a Cedar request and its entities, or explains why r is
// not a request the model can express.
func (c *entityCache) build(r Request) (types.Request, *entities, error) {
	act, ok := actionEntities[r.Action]
	if !ok {
		return types.Request{}, nil, fmt.Errorf("%w: unknown action %q", ErrInvalidRequest, r.Action)
	}
	es := &entities{}
	es.add(act)

	p := r.Principal
	var puid types.EntityUID
	var parents types.EntityUIDSet
	switch p.Kind {
	case KindTenantKey, KindTenantUser:
		if p.Tenant.IsZero() {
			return types.Request{}, nil, fmt.Errorf("%w: %s principal %q has no tenant", ErrInvalidRequest, p.Kind, p.ID)
		}
		var ok bool
		if parents, ok = roleParents[p.Role]; !ok {
			return types.Request{}, nil, fmt.Errorf("%w: %s principal %q has role %q (want admin, writer or reader)",
				ErrInvalidRequest, p.Kind, p.ID, p.Role)
		}
		typ := typeTenantKey
		if p.Kind == KindTenantUser {
			typ = typeTenantUser
		}
		puid = cedar.NewEntityUID(typ, types.String(p.ID))
	case KindOperator:
		p.Tenant = tenant.ID{} // operators and support belong to no tenant
		puid = cedar.NewEntityUID(typeOperator, types.String(p.ID))
	case KindSupport:
		p.Tenant = tenant.ID{}
		puid = cedar.NewEntityUID(typeSupport, types.String(p.ID))
	case KindAnalyst:
		p.Tenant = tenant.ID{}
		puid = cedar.NewEntityUID(typeAnalyst, types.String(p.ID))
	default:
		return types.Request{}, nil, fmt.Errorf("%w: unknown principal kind %q (want tenant_key, tenant_user, operator, support or analyst)",
			ErrInvalidRequest, p.Kind)
	}
	es.add(types.Entity{UID: puid, Parents: parents, Attributes: c.principalAttrs(p)})

	var res types.EntityUID
	switch {
	case r.Tenant.IsZero():
		if r.Collection != "" {
			return types.Request{}, nil, fmt.Errorf("%w: collection %q without a tenant", ErrInvalidRequest, r.Collection)
		}
		res = fleetUID
		es.add(types.Entity{UID: res})
	default:
		t := c.tenant(r.Tenant)
		es.add(t)
		res = t.UID
		if r.Collection != "" {
			coll := c.collection(r.Tenant, r.Collection)
			es.add(coll)
			res = coll.UID
		}
	}
	return types.Request{
		Principal: puid,
		Action:    act.UID,
		Resource:  res,
		Context:   contexts[b2i(r.ActAs)][b2i(r.GrantLive)],
	}, es, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
