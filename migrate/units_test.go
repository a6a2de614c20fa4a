package migrate_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// unitBackend is an Applier that records each unit's version in the unit
// (a map), as the real backends do in their schema_migrations tables, and
// reads it back (VersionReader). Units in skip are not its units.
type unitBackend struct {
	mu   sync.Mutex
	v    map[migrate.Unit]int // guarded by mu
	skip map[migrate.Unit]bool
	fail map[migrate.Unit]error
}

func (b *unitBackend) Apply(_ context.Context, u migrate.Unit, ms []migrate.Migration) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.fail[u]; err != nil {
		return b.v[u], err
	}
	b.v[u] = migrate.Latest(ms)
	return b.v[u], nil
}

func (b *unitBackend) UnitVersions(_ context.Context, units []migrate.Unit) (map[migrate.Unit]int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[migrate.Unit]int{}
	for _, u := range units {
		if !b.skip[u] {
			out[u] = b.v[u]
		}
	}
	return out, nil
}

func TestAPlanWithoutStateReadsTheUnitsOwnVersions(t *testing.T) {
	ctx := context.Background()
	pooled := migrate.Unit{Shard: "a", Mode: store.Pooled}
	acme := migrate.Unit{Shard: "a", Mode: store.Database, Tenant: tenant.MustParse("acme")}
	bolt := migrate.Unit{Shard: "a", Mode: store.Database, Tenant: tenant.MustParse("bolt")}
	b := &unitBackend{v: map[migrate.Unit]int{acme: 3}, skip: map[migrate.Unit]bool{pooled: true}}
	plan := migrate.Plan{Units: []migrate.Unit{pooled, acme, bolt}, Appliers: map[string]migrate.Applier{"a": b},
		Migrations: migrations(3)}

	t.Run("status reads each unit and leaves out units the backend does not migrate", func(t *testing.T) {
		rep, err := plan.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Units) != 2 || rep.Units[0].Unit != acme || rep.Units[0].State != migrate.StateCurrent ||
			rep.Units[1].Unit != bolt || rep.Units[1].State != migrate.StateBehind {
			t.Fatalf("status %+v", rep.Units)
		}
	})
	t.Run("a run migrates what is behind, and the next run reads it back", func(t *testing.T) {
		rep, err := migrate.Run(ctx, plan)
		if err != nil || rep.Counts[migrate.StateMigrated] != 1 || rep.Counts[migrate.StateCurrent] != 1 {
			t.Fatalf("run: %v, %v", err, rep.Counts)
		}
		rep, err = migrate.Run(ctx, plan)
		if err != nil || rep.Counts[migrate.StateCurrent] != 2 {
			t.Fatalf("second run: %v, %v", err, rep.Counts)
		}
	})
	t.Run("a failed unit keeps the version it has", func(t *testing.T) {
		boom := errors.New("boom")
		b.fail = map[migrate.Unit]error{bolt: boom}
		p := plan
		p.Migrations = migrations(4)
		_, err := migrate.Run(ctx, p)
		var ue *migrate.UnitError
		if !errors.As(err, &ue) || ue.Unit != bolt || !errors.Is(err, boom) {
			t.Fatalf("run: %v, want bolt's failure", err)
		}
		rep, err := p.Status(ctx)
		if err != nil || rep.Units[0].Version != 4 || rep.Units[1].Version != 3 {
			t.Fatalf("status after the failure: %+v, %v", rep.Units, err)
		}
	})
	t.Run("an applier that cannot read versions is refused", func(t *testing.T) {
		p := plan
		p.Appliers = map[string]migrate.Applier{"a": applyOnly{}}
		if _, err := p.Status(ctx); err == nil {
			t.Fatal("Status with an applier that is no VersionReader succeeded")
		}
	})
	t.Run("a shard without an applier is refused", func(t *testing.T) {
		p := plan
		p.Appliers = nil
		if _, err := p.Status(ctx); !errors.Is(err, migrate.ErrNoApplier) {
			t.Fatalf("Status: %v, want ErrNoApplier", err)
		}
	})
}

// applyOnly is an Applier without VersionReader.
type applyOnly struct{}

func (applyOnly) Apply(context.Context, migrate.Unit, []migrate.Migration) (int, error) {
	return 0, nil
}
