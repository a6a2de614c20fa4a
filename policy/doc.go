// Package policy authorizes Bulkhead requests with Cedar policies
// (github.com/cedar-policy/cedar-go): policy as code for who may do what
// to which tenant.
//
// The server authenticates a request, builds a Request (principal, action,
// tenant, collection, act-as and grant flags) and asks an Engine before the
// handler runs:
//
//	eng, err := policy.New(policy.Options{Dir: "/etc/bulkhead/policies", Logger: log})
//	if err != nil { ... }             // a policy file that does not parse stops the start
//	go eng.Watch(ctx)                 // reload on change, keep the last good set
//	d, err := eng.Authorize(ctx, policy.Request{
//		Principal: policy.Principal{Kind: policy.KindTenantKey, ID: keyID, Tenant: acme, Role: "reader"},
//		Action:    "record.write", Tenant: acme, Collection: "orders",
//	})
//	// d.Allow == false; d.Policies names the determining policies
//
// # Entity model
//
// Each Request becomes one Cedar request with a handful of entities, built
// per request (nothing is fetched):
//
//   - principal: TenantKey::"<key id>" or TenantUser::"<issuer>|<subject>"
//     with attributes kind, role and tenant (a Tenant entity), and the Role
//     groups of its role as parents (Role::"admin" ⊃ "writer" ⊃ "reader":
//     an admin is in all three); Operator::"<id>", Support::"<id>" or
//     Analyst::"<id>" with kind and role.
//   - resource: Collection::"<tenant>/<name>" (attributes tenant and name,
//     parent its Tenant) when the request names a collection, else
//     Tenant::"<id>" (attribute tenant, itself), else Fleet::"fleet" for
//     fleet-wide control-plane actions such as tenant.list and tenant.create.
//   - action: Action::"<name>" from Actions, a member of its plane group
//     (Action::"data_plane", "tenant_admin", "control_plane" or
//     "analytics") and, for
//     tenant-role actions, of its capability group (Action::"read",
//     "write" or "admin").
//   - context: {act_as: Bool, grant_live: Bool}.
//
// # The default policy set
//
// default.cedar is embedded and always in force unless a policy directory
// holds its own default.cedar. Cedar denies unless some permit matches and
// no forbid does, so the forbids are the guarantees that no custom permit
// can undo. Each policy, by @id:
//
//   - tenant-isolation (forbid): a tenant key or user acts only on resources
//     in its own tenant. Another tenant's records, collections, keys or
//     audit log, and fleet-wide resources, are denied.
//   - tenant-no-control-plane (forbid): tenant principals never use the
//     operator API (tenant.*, key.create/revoke/list, grant.*, ...).
//   - tenant-read (permit): readers, writers and admins read records and
//     list collections.
//   - tenant-write (permit): writers and admins write and delete records.
//   - tenant-admin (permit): admins manage their tenant's keys (key.manage,
//     /v1/keys), read its audit log (audit.read) and export (record.export).
//   - operator-control-plane (permit): operators may do every control-plane
//     action.
//   - operator-no-data-plane (forbid): operators never reach the data plane
//     or a tenant's own admin actions, even when acting as a tenant.
//   - support-read-with-grant (permit): a support agent reads records and
//     lists collections when acting as a tenant (act_as) with a live grant
//     for that tenant (grant_live).
//   - support-only-granted-reads (forbid): support agents can do nothing
//     else — no writes, exports or control plane, and no reads without
//     both act_as and grant_live.
//   - act-as-support-only (forbid): an act-as request from anyone but a
//     support agent (a tenant key sending Bulkhead-Act-As-Tenant) is denied.
//   - analyst-analytics (permit): analysts run analytics.query (aggregate,
//     noisy, k-thresholded queries across tenants; package analytics).
//   - analyst-only-analytics (forbid): analysts can do nothing else — no
//     tenant's data, no control plane.
//   - analytics-analysts-only (forbid): no one but an analyst runs
//     analytics: not tenants, support agents or the operator.
//
// The embedded default.cases.json holds the test cases of this set; they
// run in this package's tests and with "bulkhead policy check".
//
// # Custom policies and test cases
//
// Options.Dir (serve --policy-dir) adds its *.cedar files to the set; a
// default.cedar there replaces the embedded one. Policies are named by
// their @id("...") annotation (or "<file>:<line>"); ids must be unique.
// Watch polls the directory and swaps in the new set atomically; a set
// that fails to parse is logged and the last good one stays in force.
//
// Test cases live next to the policies in *.cases.json files, a JSON array:
//
//	[{"name": "reader cannot write", "expect": "deny",
//	  "request": {"principal": {"kind": "tenant_key", "id": "k1", "tenant": "acme", "role": "reader"},
//	              "action": "record.write", "tenant": "acme", "collection": "orders",
//	              "act_as": false, "grant_live": false}}]
//
// Check(dir) parses the set and runs them; see DEFAULT_POLICIES.md.
package policy
