package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotFound: no such record for this tenant. Another tenant's record
	// and a missing record give exactly this error.
	ErrNotFound = errors.New("record not found")
	// ErrConflict: the record already exists (create) or changed under us.
	ErrConflict = errors.New("record already exists")
	// ErrPrecondition: If-Match named a version the record does not have.
	ErrPrecondition = errors.New("version precondition failed")
	// ErrInvalidCollection: the collection name breaks ^[a-z][a-z0-9_]{0,62}$.
	ErrInvalidCollection = errors.New("invalid collection name")
	// ErrInvalidRecordID: the record id breaks ^[A-Za-z0-9._~-]{1,128}$.
	ErrInvalidRecordID = errors.New("invalid record id")
	// ErrInvalidData: the record data is not a JSON object, or nests too deep.
	ErrInvalidData = errors.New("invalid record data")
	// ErrInvalidCursor: the cursor is malformed, tampered with, or was made
	// for another tenant, collection or filter.
	ErrInvalidCursor = errors.New("invalid cursor")
	// ErrInvalidFilter: a list filter is malformed.
	ErrInvalidFilter = errors.New("invalid filter")
	// ErrInvalidLimit: a list limit is outside 1..MaxLimit.
	ErrInvalidLimit = errors.New("invalid limit")
	// ErrIsolationUnsupported: the backend cannot host the isolation mode.
	ErrIsolationUnsupported = errors.New("isolation mode not supported")
	// ErrInvalidIsolation: the isolation mode is not one of pooled, schema, database.
	ErrInvalidIsolation = errors.New("invalid isolation mode")
	// ErrUnknownTenant: the tenant has no placement (never provisioned, or
	// being deleted).
	ErrUnknownTenant = errors.New("unknown tenant")
	// ErrUnknownShard: the placement names a shard the router does not have.
	ErrUnknownShard = errors.New("unknown shard")
	// ErrTenantMismatch: a Tx was used with a context that carries another
	// tenant than the one it was opened for.
	ErrTenantMismatch = errors.New("context tenant does not match transaction tenant")
	// ErrTxDone: the transaction was already committed or rolled back.
	ErrTxDone = errors.New("transaction already finished")
)

// Mode is a tenant's isolation mode.
type Mode string

// The isolation modes.
const (
	Pooled   Mode = "pooled"   // shared tables, every statement tenant-scoped
	Schema   Mode = "schema"   // one schema per tenant (PostgreSQL)
	Database Mode = "database" // one database (or SQLite file) per tenant
)

// ParseMode returns the Mode named s, or an error wrapping ErrInvalidIsolation.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Pooled, Schema, Database:
		return m, nil
	}
	return "", fmt.Errorf("%w %q (use pooled, schema or database)", ErrInvalidIsolation, s)
}

// Placement says where a tenant's data lives: its isolation mode and shard.
type Placement struct {
	Mode  Mode   `json:"mode"`
	Shard string `json:"shard"`
}

// Record is one JSON document of a tenant, identified by collection and id.
type Record struct {
	ID         string          `json:"id"`
	Collection string          `json:"collection"`
	Data       json.RawMessage `json:"data"`
	Version    int64           `json:"version"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// Collection is a tenant's collection and how many records it holds.
type Collection struct {
	Name    string `json:"name"`
	Records int64  `json:"records"`
}

// Page is one page of a list. NextCursor is empty on the last page.
type Page struct {
	Items      []Record `json:"items"`
	NextCursor string   `json:"next_cursor"`
}

// IfMatch is a write precondition. The zero value is unconditional; Any
// requires that the record exists; Version requires that exact version.
type IfMatch struct {
	Any     bool
	Version int64
}

func (m IfMatch) set() bool { return m.Any || m.Version != 0 }

// List limits.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
	MaxFilters   = 8
)

// ListOptions selects a page of a collection.
type ListOptions struct {
	Limit   int      // 0 means DefaultLimit
	Cursor  string   // from a previous Page.NextCursor
	Filters []Filter // ANDed equality filters on top-level data fields
}

// YieldEvery is how many records a long loop (a backend reading a page,
// the server encoding one) handles between calls to runtime.Gosched. Go
// preempts a running goroutine only after a 10 ms slice, so a tenant's
// 1000-record page would otherwise keep other tenants' short requests
// queued behind it on the same P; admission control bounds how many heavy
// requests run at once, this bounds how long each holds a P. A yield costs
// well under a microsecond.
const YieldEvery = 32
