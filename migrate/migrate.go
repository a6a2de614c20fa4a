package migrate

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Migration is one versioned SQL migration of a team's own tables.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Unit is one place migrations are applied: a shard's pooled tables
// (Tenant is zero), or one tenant's schema or database.
type Unit struct {
	Shard  string
	Mode   store.Mode
	Tenant tenant.ID
}

// String names the unit: "shard/pooled" or "shard/schema/acme".
func (u Unit) String() string {
	if u.Tenant.IsZero() {
		return u.Shard + "/" + string(u.Mode)
	}
	return u.Shard + "/" + string(u.Mode) + "/" + u.Tenant.String()
}

// Applier applies migrations to a unit; backends implement it. Apply runs
// the migrations of ms whose version is above the unit's current one and
// returns the unit's new version.
type Applier interface {
	Apply(ctx context.Context, u Unit, ms []Migration) (int, error)
}

// State records each unit's version; the catalog implements it.
type State interface {
	// Versions returns every unit's recorded version in one read.
	Versions(ctx context.Context) (map[Unit]int, error)
	// SetVersion records a unit's version.
	SetVersion(ctx context.Context, u Unit, v int) error
}
