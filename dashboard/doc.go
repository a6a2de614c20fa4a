// Package dashboard is the operator's web page: a fleet table (tenants,
// tier, placement, health, anomaly flags, usage against quota), the top
// tenants by load and by errors, a per-tenant drill-down with charts over
// the last hour, and the audit log's recent privileged actions. It shows
// counts and latencies, never a record or a credential.
//
// Everything it serves is embedded (one HTML page and a sign-in form, one
// stylesheet, one script, hand-written SVG charts; no framework, CDN or
// font), under a strict Content-Security-Policy with no inline code. The
// operator signs in with the operator token through a form; the token is
// checked in constant time against its SHA-256 and never kept, and the
// browser gets a random 256-bit session id in an HttpOnly, SameSite=Strict
// cookie scoped to the prefix (Secure over TLS or with SecureCookie).
// Sessions live on the server with idle and absolute expiry and end when
// the operator token changes. Sign-in and sign-out check Origin /
// Sec-Fetch-Site; sign-out also needs the session's CSRF token in
// X-CSRF-Token. Failed sign-ins are throttled per client address and,
// with a Recorder, audited.
//
// The server mounts it at /dashboard; a team mounts it on its own mux
// from the same parts:
//
//	d, err := dashboard.New(dashboard.Config{
//		OperatorHash: func() [32]byte { return opHash }, // SHA-256 of the operator token
//		Tenants:      cat,                                // *catalog.Catalog
//		Limits:       resolver,                           // *limits.Resolver
//		Usage:        tracker,                            // *usage.Tracker
//		Health:       monitor,                            // *health.Monitor
//		Audit:        auditLog,                           // *audit.Log
//		Recorder:     gate,                               // *ingress.Gate
//	})
//	mux.Handle("/dashboard", d)
//	mux.Handle("/dashboard/", d)
//
// The JSON API the page reads (GET only, a session required, no-store):
// <prefix>/api/fleet, /api/top, /api/tenants/{id}, /api/audit?limit=.
package dashboard
