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

// VersionReader is an optional capability of an Applier: it reads units'
// versions from the units themselves — from the table each unit records
// its migrations in, in the same transaction as the migration — and
// changes nothing. Both backends implement it. A Plan without a State reads
// versions this way, so a unit's own table is the only record of its
// version and cannot disagree with another.
type VersionReader interface {
	// UnitVersions returns the version of each of units that the backend
	// migrates (0 for a unit no migration reached). A unit the backend
	// does not migrate — the pooled file of a SQLite shard, which holds no
	// team tables — is absent from the map.
	UnitVersions(ctx context.Context, units []Unit) (map[Unit]int, error)
}

// State records each unit's version apart from the units, for a Plan that
// sets one (tests do, with an in-memory State). Without one, a Plan reads
// the units' own versions (VersionReader).
type State interface {
	// Versions returns every unit's recorded version in one read.
	Versions(ctx context.Context) (map[Unit]int, error)
	// SetVersion records a unit's version.
	SetVersion(ctx context.Context, u Unit, v int) error
}
