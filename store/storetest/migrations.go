package storetest

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Migrations tells RunMigrations how to open an engine's backend.
type Migrations struct {
	// Open returns a fresh backend for shard Shard that implements
	// migrate.Applier. If Carry is set, ms are the migrations its options
	// carry (applied to the pooled unit at open and to every tenant at
	// Provision); otherwise Open ignores ms.
	Open  func(t *testing.T, ms []migrate.Migration) store.Backend
	Carry bool
	// Modes are the modes whose units the backend migrates: one pooled unit
	// per shard (zero tenant), one unit per tenant in the other modes.
	Modes []store.Mode
}

// migrationsV2 are two migrations in SQL that SQLite and PostgreSQL share.
var migrationsV2 = []migrate.Migration{
	{Version: 1, Name: "widgets", SQL: `CREATE TABLE widgets (tenant_id text NOT NULL, id text NOT NULL, PRIMARY KEY (tenant_id, id))`},
	{Version: 2, Name: "gadgets", SQL: `CREATE TABLE gadgets (tenant_id text NOT NULL, id text NOT NULL, n integer, PRIMARY KEY (tenant_id, id))`},
}

// RunMigrations runs the migrations conformance cases against backends that
// mc.Open makes: Apply returns each unit's new version and is a no-op when
// repeated; a failing migration leaves the unit at its previous version and
// its error names the migration; versions must be positive and distinct;
// new tenants start at the latest version (mc.Carry); migrate.Run over a
// fleet records every unit's version.
func RunMigrations(t *testing.T, mc Migrations) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, Migrations)
	}{
		{"ApplyReturnsTheNewVersionAndAgainIsANoOp", testApplyVersions},
		{"FailingMigrationLeavesThePreviousVersionAndIsNamed", testApplyFailure},
		{"VersionsMustBePositiveAndDistinct", testApplyBadVersions},
		{"NewTenantsStartAtTheLatestVersion", testNewTenantsAtLatest},
		{"RunRecordsEveryUnitsVersion", testRunFleet},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, mc)
		})
	}
}

// fleet opens a backend with ms and provisions n tenants per mode of mc; it
// returns the backend and its units.
func (mc Migrations) fleet(t *testing.T, ms []migrate.Migration, n int) (migrate.Applier, []migrate.Unit) {
	t.Helper()
	b := mc.Open(t, ms)
	t.Cleanup(func() { _ = b.Close() })
	a, ok := b.(migrate.Applier)
	if !ok {
		t.Fatalf("%T is not a migrate.Applier", b)
	}
	var units []migrate.Unit
	for _, mode := range mc.Modes {
		if mode == store.Pooled {
			units = append(units, migrate.Unit{Shard: Shard, Mode: mode})
			continue
		}
		for i := range n {
			id := tenant.MustParse(fmt.Sprintf("%s-%d", mode, i))
			if err := b.Provision(context.Background(), id, mode); err != nil {
				t.Fatalf("provision %s in %s: %v", id, mode, err)
			}
			units = append(units, migrate.Unit{Shard: Shard, Mode: mode, Tenant: id})
		}
	}
	return a, units
}

// version is the unit's current version: Apply with no migrations.
func version(t *testing.T, a migrate.Applier, u migrate.Unit) int {
	t.Helper()
	v, err := a.Apply(context.Background(), u, nil)
	if err != nil {
		t.Fatalf("version of %s: %v", u, err)
	}
	return v
}

func mustApply(t *testing.T, a migrate.Applier, u migrate.Unit, ms []migrate.Migration, want int) {
	t.Helper()
	if v, err := a.Apply(context.Background(), u, ms); err != nil || v != want {
		t.Fatalf("Apply(%s, %d migrations) = %d, %v; want %d", u, len(ms), v, err, want)
	}
}

func testApplyVersions(t *testing.T, mc Migrations) {
	a, units := mc.fleet(t, nil, 2)
	for _, u := range units {
		if v := version(t, a, u); v != 0 {
			t.Fatalf("a new unit %s is at version %d, want 0", u, v)
		}
		mustApply(t, a, u, migrationsV2[:1], 1)
		mustApply(t, a, u, migrationsV2, 2)
		mustApply(t, a, u, migrationsV2, 2) // again: nothing to do
		mustApply(t, a, u, migrationsV2[:1], 2)
		if v := version(t, a, u); v != 2 {
			t.Fatalf("%s is at version %d after applying 2", u, v)
		}
	}
}

func testApplyFailure(t *testing.T, mc Migrations) {
	a, units := mc.fleet(t, nil, 1)
	broken := migrate.Migration{Version: 3, Name: "broken_on_purpose", SQL: `CREATE TABLE half (x integer); CREATE TABLE nope (`}
	fixed := migrate.Migration{Version: 3, Name: "fixed", SQL: `CREATE TABLE half (x integer)`}
	for _, u := range units {
		mustApply(t, a, u, migrationsV2, 2)
		v, err := a.Apply(context.Background(), u, append(migrationsV2[:2:2], broken))
		if err == nil || v != 2 || !strings.Contains(err.Error(), broken.Name) {
			t.Fatalf("Apply(%s) of a broken migration = %d, %v; want version 2 and an error naming %q", u, v, err, broken.Name)
		}
		if v := version(t, a, u); v != 2 {
			t.Fatalf("%s is at version %d after a failed migration, want 2", u, v)
		}
		// The broken migration's first statement was rolled back with it:
		// the fixed migration creates the same table.
		mustApply(t, a, u, append(migrationsV2[:2:2], fixed), 3)
	}
}

func testApplyBadVersions(t *testing.T, mc Migrations) {
	a, units := mc.fleet(t, nil, 1)
	for _, u := range units {
		for _, ms := range [][]migrate.Migration{
			{{Version: 0, Name: "zero", SQL: `CREATE TABLE zero (x integer)`}},
			{{Version: -1, Name: "negative", SQL: `CREATE TABLE negative (x integer)`}},
			{migrationsV2[0], {Version: 1, Name: "twice", SQL: `CREATE TABLE twice (x integer)`}},
		} {
			if v, err := a.Apply(context.Background(), u, ms); err == nil {
				t.Fatalf("Apply(%s) of versions %v = %d, nil; want an error", u, versions(ms), v)
			}
			if v := version(t, a, u); v != 0 {
				t.Fatalf("%s is at version %d after refused migrations %v, want 0", u, v, versions(ms))
			}
		}
		mustApply(t, a, u, migrationsV2, 2) // nothing of the refused ones was run
	}
}

func versions(ms []migrate.Migration) []int {
	vs := make([]int, len(ms))
	for i, m := range ms {
		vs[i] = m.Version
	}
	return vs
}

func testNewTenantsAtLatest(t *testing.T, mc Migrations) {
	if !mc.Carry {
		t.Skip("the backend's options carry no migrations")
	}
	a, units := mc.fleet(t, migrationsV2, 2)
	for _, u := range units {
		if v := version(t, a, u); v != 2 {
			t.Fatalf("%s provisioned with 2 migrations is at version %d", u, v)
		}
		mustApply(t, a, u, migrationsV2, 2)
	}
}

// memState is an in-memory migrate.State.
type memState struct {
	mu sync.Mutex
	m  map[migrate.Unit]int // guarded by mu
}

func (s *memState) Versions(context.Context) (map[migrate.Unit]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m), nil
}

func (s *memState) SetVersion(_ context.Context, u migrate.Unit, v int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[migrate.Unit]int{}
	}
	s.m[u] = v
	return nil
}

// countingApplier counts the calls it passes on.
type countingApplier struct {
	migrate.Applier
	calls atomic.Int64
}

func (c *countingApplier) Apply(ctx context.Context, u migrate.Unit, ms []migrate.Migration) (int, error) {
	c.calls.Add(1)
	return c.Applier.Apply(ctx, u, ms)
}

func testRunFleet(t *testing.T, mc Migrations) {
	a, units := mc.fleet(t, nil, 3)
	st := &memState{}
	ca := &countingApplier{Applier: a}
	plan := migrate.Plan{Units: units, State: st, Appliers: map[string]migrate.Applier{Shard: ca}, Migrations: migrationsV2, Concurrency: 3}
	check := func(what string, latest int, state string) {
		t.Helper()
		rep, err := migrate.Run(context.Background(), plan)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if rep.Counts[state] != len(units) {
			t.Fatalf("%s: %v, want %d units %s", what, rep.Counts, len(units), state)
		}
		got, _ := st.Versions(context.Background())
		for _, u := range units {
			if got[u] != latest || version(t, a, u) != latest {
				t.Fatalf("%s: %s recorded at %d, at %d itself; want %d", what, u, got[u], version(t, a, u), latest)
			}
		}
	}
	check("first run", 2, migrate.StateMigrated)
	before := ca.calls.Load()
	check("second run", 2, migrate.StateCurrent)
	if n := ca.calls.Load() - before; n != 0 {
		t.Fatalf("a run with nothing to do called Apply %d times", n)
	}
	plan.Migrations = append(migrationsV2[:2:2], migrate.Migration{Version: 3, Name: "more", SQL: `CREATE TABLE more (x integer)`})
	check("run with a new migration", 3, migrate.StateMigrated)
}
