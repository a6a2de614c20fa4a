package store

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Backend is the implementer's contract: a storage engine that hosts
// tenants in one or more isolation modes. Backends move rows; they do not
// validate input, compute versions or make cursors — the Router does that
// once for all of them.
//
// Every BackendTx a backend returns must be confined to the tenant it was
// opened for: no statement it runs may read or write another tenant's rows.
// store/storetest checks this for every backend and mode.
type Backend interface {
	// Supports returns nil if the backend can host mode, or an error
	// wrapping ErrIsolationUnsupported that says what to use instead.
	Supports(mode Mode) error
	// Provision prepares storage for a new tenant. It is idempotent.
	Provision(ctx context.Context, id tenant.ID, mode Mode) error
	// Drop removes all of the tenant's data. It is idempotent.
	Drop(ctx context.Context, id tenant.ID, mode Mode) error
	// Begin opens a transaction scoped to the tenant. write reports whether
	// the transaction may write, so backends can take write locks up front.
	Begin(ctx context.Context, id tenant.ID, mode Mode, write bool) (BackendTx, error)
	// Ping reports whether the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases every resource; in-flight transactions should be done.
	Close() error
}

// Query is a validated list request, ready for a backend: records of
// Collection whose id sorts after After (byte order), matching every
// filter, in ascending id order, at most Limit of them.
type Query struct {
	Collection string
	Filters    []Filter
	After      string
	Limit      int
	// Tokens, when not nil, has one entry per filter (len(Tokens) ==
	// len(Filters)): a sealed record (its data an object holding the key
	// SealedMarker) matches filter i when its data's SealedIndex array
	// holds at least one of Tokens[i]; a record that is not sealed (written
	// before encryption was turned on, not yet re-encrypted) matches filter
	// i as Filters[i].Matches says. All filters must match.
	Tokens [][]string
}

// BackendTx is a tenant-scoped transaction of a backend. Inputs are already
// validated by the Router.
type BackendTx interface {
	// Get returns the record or ErrNotFound.
	Get(ctx context.Context, collection, id string) (Record, error)
	// Insert adds a new record, or returns ErrConflict if it exists.
	Insert(ctx context.Context, rec Record) error
	// Update replaces the record whose version is prev, or returns ErrConflict.
	Update(ctx context.Context, rec Record, prev int64) error
	// Delete removes the record or returns ErrNotFound.
	Delete(ctx context.Context, collection, id string) error
	// List returns the records the query selects.
	List(ctx context.Context, q Query) ([]Record, error)
	// Collections returns the tenant's collections with record counts, by name.
	Collections(ctx context.Context) ([]Collection, error)
	Commit() error
	Rollback() error
}
