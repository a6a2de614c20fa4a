// Package tenant defines the canonical tenant identifier and carries it
// through a context.Context: the first thing every other Bulkhead package
// relies on.
//
// # The ID
//
// An ID can only be made by Parse (or MustParse, for constants and tests),
// so any ID value in a program has passed the tenancy contract's rules:
// ASCII, 2–40 characters of a-z, 0-9 and '-', starting with a letter, not
// ending with '-', and not a reserved word (admin, system, public,
// default, bulkhead). Errors wrap ErrInvalid and say which rule the input
// breaks. The zero ID means "no tenant" and is refused everywhere a tenant
// is required. IDs are comparable, immutable, and decode from JSON or text
// only through Parse.
//
//	id, err := tenant.Parse(r.PathValue("tenant")) // control plane input
//	if err != nil {
//		return err // wraps tenant.ErrInvalid
//	}
//
// # The tenant in the context
//
// The credential decides the tenant: ingress middleware authenticates a
// request and puts its tenant in the context with WithID; everything
// below — the store.Router, limits, audit, logs — reads it back with
// FromContext. A context without a tenant gives ErrMissing, and data
// access fails closed with it: no tenant never means "all tenants".
// Background jobs and event handlers re-enter their tenant explicitly:
//
//	ctx = tenant.WithID(ctx, job.Tenant)
//	err := router.Tx(ctx, func(tx *store.Tx) error { ... })
//
// # Storage names
//
// ID.StorageName is the one function that turns an ID into a file,
// schema or database name: injective, and always prefixed with "t_" so
// that no tenant can name a system object.
package tenant
