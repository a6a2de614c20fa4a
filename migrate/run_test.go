package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// memState is an in-memory migrate.State with optional failure hooks.
type memState struct {
	mu       sync.Mutex
	v        map[migrate.Unit]int
	reads    int
	sets     []migrate.Unit
	SetFunc  func(u migrate.Unit, v int) error // nil: succeed
	ReadFunc func() error                      // nil: succeed
}

func newState() *memState { return &memState{v: map[migrate.Unit]int{}} }

func (s *memState) Versions(ctx context.Context) (map[migrate.Unit]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.ReadFunc != nil {
		if err := s.ReadFunc(); err != nil {
			return nil, err
		}
	}
	out := make(map[migrate.Unit]int, len(s.v))
	for u, v := range s.v {
		out[u] = v
	}
	return out, nil
}

func (s *memState) SetVersion(ctx context.Context, u migrate.Unit, v int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.SetFunc != nil {
		if err := s.SetFunc(u, v); err != nil {
			return err
		}
	}
	s.sets = append(s.sets, u)
	s.v[u] = v
	return nil
}

func (s *memState) version(u migrate.Unit) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v[u]
}

// applier is a hand-written fake migrate.Applier: ApplyFunc decides, and
// every call is recorded.
type applier struct {
	mu        sync.Mutex
	calls     []migrate.Unit
	ApplyFunc func(ctx context.Context, u migrate.Unit, ms []migrate.Migration) (int, error)
}

func (a *applier) Apply(ctx context.Context, u migrate.Unit, ms []migrate.Migration) (int, error) {
	a.mu.Lock()
	a.calls = append(a.calls, u)
	a.mu.Unlock()
	if a.ApplyFunc != nil {
		return a.ApplyFunc(ctx, u, ms)
	}
	return ms[len(ms)-1].Version, nil
}

func (a *applier) called() []migrate.Unit {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]migrate.Unit(nil), a.calls...)
}

func migrations(n int) []migrate.Migration {
	ms := make([]migrate.Migration, n)
	for i := range ms {
		ms[i] = migrate.Migration{Version: i + 1, Name: fmt.Sprint("m", i+1), SQL: "select 1"}
	}
	return ms
}

func pooled(shard string) migrate.Unit { return migrate.Unit{Shard: shard, Mode: store.Pooled} }

func schemaUnit(shard, id string) migrate.Unit {
	return migrate.Unit{Shard: shard, Mode: store.Schema, Tenant: tenant.MustParse(id)}
}

// fleet returns pooled units of shards a and b and n schema tenants split
// across them.
func fleet(n int) []migrate.Unit {
	units := []migrate.Unit{pooled("a"), pooled("b")}
	for i := 0; i < n; i++ {
		shard := "a"
		if i%2 == 1 {
			shard = "b"
		}
		units = append(units, schemaUnit(shard, fmt.Sprintf("t%03d", i)))
	}
	return units
}

func TestStatusComparesEachUnitWithTheLatest(t *testing.T) {
	st := newState()
	current, behind, ahead := schemaUnit("a", "cur"), schemaUnit("a", "beh"), schemaUnit("a", "ahe")
	st.v[current], st.v[behind], st.v[ahead] = 3, 1, 5
	fresh := migrate.Unit{Shard: "a", Mode: store.Database, Tenant: tenant.MustParse("fresh")}
	st.v[schemaUnit("a", "gone")] = 1 // no longer in the catalog: not reported
	rep, err := migrate.Status(context.Background(), []migrate.Unit{current, behind, ahead, fresh}, st, migrations(3))
	if err != nil {
		t.Fatal(err)
	}
	want := map[migrate.Unit][2]any{current: {3, "current"}, behind: {1, "behind"}, ahead: {5, "ahead"}, fresh: {0, "behind"}}
	if len(rep.Units) != len(want) {
		t.Fatalf("Status reported %d units, want %d", len(rep.Units), len(want))
	}
	for _, s := range rep.Units {
		w := want[s.Unit]
		if s.Version != w[0] || s.State != w[1] || s.Latest != 3 {
			t.Errorf("%s: version %d state %s latest %d, want %v latest 3", s.Unit, s.Version, s.State, s.Latest, w)
		}
	}
	if rep.Counts["behind"] != 2 || rep.Counts["current"] != 1 || rep.Counts["ahead"] != 1 {
		t.Errorf("counts = %v", rep.Counts)
	}
	if st.reads != 1 {
		t.Errorf("Status read versions %d times, want 1", st.reads)
	}
}

func TestRunWithNothingToApplyReadsOnceAndAppliesNothing(t *testing.T) {
	st := newState()
	units := fleet(50)
	for _, u := range units {
		st.v[u] = 2
	}
	a := &applier{}
	rep, err := migrate.Run(context.Background(), migrate.Plan{Units: units, State: st,
		Appliers: map[string]migrate.Applier{"a": a, "b": a}, Migrations: migrations(2)})
	if err != nil {
		t.Fatal(err)
	}
	if st.reads != 1 || len(a.called()) != 0 || len(st.sets) != 0 {
		t.Fatalf("no-op run: %d version reads, %d applies, %d sets; want 1, 0, 0", st.reads, len(a.called()), len(st.sets))
	}
	if rep.Counts["current"] != len(units) {
		t.Fatalf("counts = %v, want %d current", rep.Counts, len(units))
	}
}

func TestRunMigratesPooledUnitsBeforeTenantsAndRecordsVersions(t *testing.T) {
	st := newState()
	units := fleet(20)
	st.v[schemaUnit("a", "t000")] = 3 // already current
	st.v[schemaUnit("b", "t001")] = 1 // gets only 2 and 3
	var mu sync.Mutex
	got := map[migrate.Unit][]int{}
	a := &applier{ApplyFunc: func(ctx context.Context, u migrate.Unit, ms []migrate.Migration) (int, error) {
		vs := []int{}
		for _, m := range ms {
			vs = append(vs, m.Version)
		}
		mu.Lock()
		got[u] = vs
		mu.Unlock()
		return ms[len(ms)-1].Version, nil
	}}
	var events []migrate.Progress
	rep, err := migrate.Run(context.Background(), migrate.Plan{Units: units, State: st,
		Appliers: map[string]migrate.Applier{"a": a, "b": a}, Migrations: migrations(3), Concurrency: 3,
		Progress: func(p migrate.Progress) { events = append(events, p) }})
	if err != nil {
		t.Fatal(err)
	}
	calls := a.called()
	if len(calls) != len(units)-1 {
		t.Fatalf("%d applies, want %d", len(calls), len(units)-1)
	}
	for i, u := range calls {
		if isPooled := u.Tenant.IsZero(); isPooled != (i < 2) {
			t.Fatalf("apply %d was %s: the two pooled units must go first", i, u)
		}
	}
	if v := got[schemaUnit("b", "t001")]; fmt.Sprint(v) != "[2 3]" {
		t.Errorf("unit at version 1 got migrations %v, want [2 3]", v)
	}
	for _, u := range units {
		if v := st.version(u); v != 3 {
			t.Errorf("%s recorded at version %d, want 3", u, v)
		}
	}
	if rep.Counts["migrated"] != len(units)-1 || rep.Counts["current"] != 1 {
		t.Errorf("counts = %v", rep.Counts)
	}
	if len(events) != 2*(len(units)-1) {
		t.Fatalf("%d progress events, want %d", len(events), 2*(len(units)-1))
	}
	last := events[len(events)-1]
	if !last.Done || last.Index != last.Total || last.Total != len(units)-1 || last.To != 3 {
		t.Errorf("last event = %+v", last)
	}
}

func TestRunBoundsConcurrency(t *testing.T) {
	const n = 3
	st := newState()
	var inflight, peak atomic.Int32
	started := make(chan struct{}, 100)
	release := make(chan struct{})
	a := &applier{ApplyFunc: func(ctx context.Context, u migrate.Unit, ms []migrate.Migration) (int, error) {
		cur := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		started <- struct{}{}
		<-release
		return 1, nil
	}}
	done := make(chan error)
	var units []migrate.Unit
	for i := 0; i < 12; i++ {
		units = append(units, schemaUnit("a", fmt.Sprintf("t%02d", i)))
	}
	go func() {
		_, err := migrate.Run(context.Background(), migrate.Plan{Units: units, State: st,
			Appliers: map[string]migrate.Applier{"a": a}, Migrations: migrations(1), Concurrency: n})
		done <- err
	}()
	for i := 0; i < n; i++ {
		<-started // n units run at once
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != n {
		t.Fatalf("peak concurrency %d, want %d", p, n)
	}
	if len(a.called()) != len(units) {
		t.Fatalf("%d applies, want %d", len(a.called()), len(units))
	}
}

func TestRunStopsTheWaveOnAFailureAndLetsInFlightUnitsFinish(t *testing.T) {
	st := newState()
	var units []migrate.Unit
	for i := 0; i < 10; i++ {
		units = append(units, schemaUnit("a", fmt.Sprintf("t%02d", i)))
	}
	failing, slow := units[1], units[0]
	failed := make(chan struct{})
	a := &applier{ApplyFunc: func(ctx context.Context, u migrate.Unit, ms []migrate.Migration) (int, error) {
		switch u {
		case slow:
			<-failed // still in flight when the other unit fails
			return 2, nil
		case failing:
			return 0, errors.New(`relation "invoices" already exists`)
		}
		return 2, nil
	}}
	rep, err := migrate.Run(context.Background(), migrate.Plan{Units: units, State: st,
		Appliers: map[string]migrate.Applier{"a": a}, Migrations: migrations(2), Concurrency: 2,
		Progress: func(p migrate.Progress) {
			if p.Done && p.Err != nil {
				close(failed)
			}
		}})
	var ue *migrate.UnitError
	if !errors.As(err, &ue) || ue.Unit != failing {
		t.Fatalf("Run error = %v, want a UnitError for %s", err, failing)
	}
	for _, want := range []string{"tenant t01", "already exists", "from version 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if calls := a.called(); len(calls) != 2 {
		t.Fatalf("applies after the failure: %v (want only the two started before it)", calls)
	}
	if v := st.version(slow); v != 2 {
		t.Errorf("in-flight unit recorded at %d, want 2 (it must finish)", v)
	}
	if v := st.version(failing); v != 0 {
		t.Errorf("failed unit recorded at %d, want 0 (the State changes only after Apply succeeds)", v)
	}
	if rep.Counts["migrated"] != 1 || rep.Counts["failed"] != 1 || rep.Counts["pending"] != 8 {
		t.Fatalf("counts = %v, want 1 migrated, 1 failed, 8 pending", rep.Counts)
	}
	for _, s := range rep.Units {
		if s.Unit == failing && (s.State != "failed" || !strings.Contains(s.Error, "already exists")) {
			t.Errorf("failed unit status = %+v", s)
		}
	}
}

func TestRunDoesNotStartTenantsWhenAPooledUnitFails(t *testing.T) {
	st := newState()
	a := &applier{ApplyFunc: func(ctx context.Context, u migrate.Unit, ms []migrate.Migration) (int, error) {
		if u == pooled("b") {
			return 0, errors.New("boom")
		}
		return 1, nil
	}}
	rep, err := migrate.Run(context.Background(), migrate.Plan{Units: fleet(6), State: st,
		Appliers: map[string]migrate.Applier{"a": a, "b": a}, Migrations: migrations(1), Concurrency: 1})
	if err == nil || !strings.Contains(err.Error(), "unit b/pooled") {
		t.Fatalf("Run error = %v, want the failure of b/pooled", err)
	}
	for _, u := range a.called() {
		if !u.Tenant.IsZero() {
			t.Fatalf("tenant unit %s started after a pooled unit failed", u)
		}
	}
	if rep.Counts["pending"] != 6 {
		t.Fatalf("counts = %v, want 6 pending tenants", rep.Counts)
	}
}

func TestRunReportsUnitsItCouldNotRecord(t *testing.T) {
	st := newState()
	bad := schemaUnit("a", "acme")
	st.SetFunc = func(u migrate.Unit, v int) error {
		if u == bad {
			return errors.New("catalog unavailable")
		}
		return nil
	}
	a := &applier{}
	rep, err := migrate.Run(context.Background(), migrate.Plan{Units: []migrate.Unit{bad}, State: st,
		Appliers: map[string]migrate.Applier{"a": a}, Migrations: migrations(2)})
	if err == nil || !strings.Contains(err.Error(), "record version 2") || !strings.Contains(err.Error(), "tenant acme") {
		t.Fatalf("Run error = %v, want a failure to record acme's version", err)
	}
	if rep.Units[0].State != "failed" || rep.Units[0].Version != 2 {
		t.Fatalf("status = %+v, want failed at version 2 (applied, not recorded)", rep.Units[0])
	}
}

func TestRunRefusesAnApplierThatStopsShort(t *testing.T) {
	st := newState()
	a := &applier{ApplyFunc: func(context.Context, migrate.Unit, []migrate.Migration) (int, error) { return 1, nil }}
	_, err := migrate.Run(context.Background(), migrate.Plan{Units: []migrate.Unit{pooled("a")}, State: st,
		Appliers: map[string]migrate.Applier{"a": a}, Migrations: migrations(2)})
	if err == nil || !strings.Contains(err.Error(), "reached version 1, want 2") {
		t.Fatalf("Run error = %v", err)
	}
	if st.version(pooled("a")) != 0 {
		t.Fatal("a unit that did not reach the latest version was recorded")
	}
}

func TestRunChecksEveryShardHasAnApplierBeforeStarting(t *testing.T) {
	st := newState()
	a := &applier{}
	_, err := migrate.Run(context.Background(), migrate.Plan{Units: fleet(4), State: st,
		Appliers: map[string]migrate.Applier{"a": a}, Migrations: migrations(1)})
	if !errors.Is(err, migrate.ErrNoApplier) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("Run error = %v, want ErrNoApplier for shard b", err)
	}
	if len(a.called()) != 0 {
		t.Fatal("Run applied migrations before finding that a shard has no applier")
	}
}

func TestRunRefusesBadMigrationListsAndStateErrors(t *testing.T) {
	st := newState()
	a := &applier{}
	plan := migrate.Plan{Units: fleet(1), State: st, Appliers: map[string]migrate.Applier{"a": a, "b": a},
		Migrations: []migrate.Migration{{Version: 2, Name: "x", SQL: "select 1"}}}
	if _, err := migrate.Run(context.Background(), plan); !errors.Is(err, migrate.ErrInvalidMigrations) {
		t.Fatalf("Run with a gap = %v", err)
	}
	plan.Migrations = migrations(1)
	st.ReadFunc = func() error { return errors.New("connection refused") }
	if _, err := migrate.Run(context.Background(), plan); err == nil || !strings.Contains(err.Error(), "read unit versions") {
		t.Fatalf("Run with a failing State = %v", err)
	}
	if len(a.called()) != 0 {
		t.Fatal("applied migrations despite errors")
	}
}

func TestRunStopsStartingUnitsWhenCanceled(t *testing.T) {
	st := newState()
	ctx, cancel := context.WithCancel(context.Background())
	a := &applier{ApplyFunc: func(ctx context.Context, u migrate.Unit, ms []migrate.Migration) (int, error) {
		cancel()
		return 1, nil
	}}
	var units []migrate.Unit
	for i := 0; i < 5; i++ {
		units = append(units, schemaUnit("a", fmt.Sprintf("t%d", i)))
	}
	rep, err := migrate.Run(ctx, migrate.Plan{Units: units, State: st,
		Appliers: map[string]migrate.Applier{"a": a}, Migrations: migrations(1), Concurrency: 1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	if len(a.called()) != 1 || rep.Counts["pending"] != 4 {
		t.Fatalf("%d applies, counts %v; want 1 apply and 4 pending", len(a.called()), rep.Counts)
	}
}
