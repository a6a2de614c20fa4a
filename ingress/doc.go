// Package ingress is the front door of a tenant-isolated service: the one
// place where a request's credential becomes a principal and a tenant, so
// that no handler parses a header or trusts a tenant id it was sent.
//
// A Gate runs these steps, in this order, and answers for them (problem+json
// on HTTP, a status code on gRPC); a handler runs only if all pass:
//
//  1. authenticate: the request's single "Authorization: Bearer" token,
//     through an Authenticator — the operator token (OperatorToken), the
//     catalog's API keys, support agents and tenant users' JWTs (package
//     ingress/catalogauth), or a team's own scheme (AuthenticatorFunc).
//     Chain tries several; ErrNotMine passes a token on;
//  2. settle the tenant: a tenant credential's own tenant, never one the
//     request names (an act-as header from a tenant credential is refused);
//     a support agent acts as the one tenant of the Bulkhead-Act-As-Tenant
//     header, read-only, under a live grant (Config.Grants);
//  3. authorize the route's action (Config.Policy; *policy.Engine);
//  4. rate-limit the tenant (Config.Limiter and Config.Limits);
//  5. admit the request under the tenant's concurrency limit
//     (Config.Admission; *admission.Controller);
//  6. audit every denial, every control-plane change and every act-as
//     request, refused or not, on the tenant's chain (Config.Audit;
//     *audit.Log). An audited request is answered only once its entry is
//     written (503 audit_unavailable otherwise); unauthenticated requests
//     are recorded a few per client address and minute, the rest counted.
//
// A step whose Config field is nil is skipped, except authentication. The
// handler finds the principal with FromContext and the tenant with
// tenant.FromContext, and hands the context to the store router, whose
// transactions are confined to that tenant.
//
// For net/http, Data and Control guard a handler for an action, and
// Middleware is Data as middleware:
//
//	gate, err := ingress.New(ingress.Config{Authenticator: auth, Policy: engine})
//	mux.Handle("GET /notes", gate.Data("record.read", listNotes))
//
// Analytics guards the third plane: analysts (KindAnalyst) only, who reach
// nothing else, with no tenant in the context and every request audited
// (package analytics answers there).
//
// For gRPC, package ingress/ingressgrpc turns the same Gate into unary and
// stream interceptors. Bulkhead's own server is built from exactly these
// parts (server/gate.go).
package ingress
