package migrate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
)

// DefaultConcurrency is how many units Run migrates at once when
// Plan.Concurrency is zero.
const DefaultConcurrency = 4

// ErrNoApplier reports a unit on a shard that Plan.Appliers does not name.
var ErrNoApplier = errors.New("no applier for shard")

// Plan is one fleet migration: the units to consider, how to migrate each
// shard, and the migrations.
type Plan struct {
	// Units are the places to migrate: one pooled unit per shard and one
	// unit per schema or database tenant (the catalog lists them).
	Units []Unit
	// State, if set, records each unit's version apart from the units.
	// Nil (the usual case): versions are read from the units themselves
	// through the appliers (VersionReader), which record them with each
	// migration, and units an applier does not migrate are left out.
	State State
	// Appliers maps shard names to the backend that migrates the shard's
	// units.
	Appliers map[string]Applier
	// Migrations are the migrations to apply, as Load returns them.
	Migrations []Migration
	// Concurrency bounds how many units are migrated at once;
	// DefaultConcurrency if zero.
	Concurrency int
	// Progress, if set, is told when each unit starts and finishes. Calls
	// are serialized, so it need not be safe for concurrent use.
	Progress func(Progress)
}

// Progress is one step of a Run.
type Progress struct {
	Unit  Unit
	From  int   // the unit's version before
	To    int   // the unit's version after (0 until Done)
	Err   error // set when the unit failed
	Done  bool  // false when the unit starts, true when it finishes
	Index int   // how many units have finished, this one included when Done
	Total int   // how many units Run is migrating
}

// UnitStatus is one unit's version against the latest migration.
type UnitStatus struct {
	Unit    Unit   `json:"-"`
	Name    string `json:"unit"` // Unit.String()
	Shard   string `json:"shard"`
	Mode    string `json:"mode"`
	Tenant  string `json:"tenant,omitempty"`
	Version int    `json:"version"`
	Latest  int    `json:"latest"`
	// State is "current", "behind", "ahead" (the unit has migrations these
	// do not know: an older migrations directory), and after a Run also
	// "migrated", "failed" or "pending" (not started because the run
	// stopped).
	State string `json:"state"`
	// Error is the failure of a unit that failed.
	Error string `json:"error,omitempty"`
}

// Unit states in UnitStatus.State.
const (
	StateCurrent  = "current"
	StateBehind   = "behind"
	StateAhead    = "ahead"
	StateMigrated = "migrated"
	StateFailed   = "failed"
	StatePending  = "pending"
)

// Report is what Status or Run found and did.
type Report struct {
	Latest  int            `json:"latest"`
	Units   []UnitStatus   `json:"units"`
	Counts  map[string]int `json:"counts"` // units per state
	Elapsed time.Duration  `json:"elapsed_ns"`
}

// UnitError is the failure of one unit in a Run. Other units stay on the
// version they had or reached: a unit's migrations are transactional.
type UnitError struct {
	Unit Unit
	From int // the unit's version before the failed attempt
	Err  error
}

func (e *UnitError) Error() string {
	who := "unit " + e.Unit.String()
	if !e.Unit.Tenant.IsZero() {
		who = "tenant " + e.Unit.Tenant.String() + " (" + e.Unit.String() + ")"
	}
	return fmt.Sprintf("migrate %s from version %d: %v", who, e.From, e.Err)
}

func (e *UnitError) Unwrap() error { return e.Err }

// Status reads every unit's version in one State.Versions call and
// compares it with the latest migration. It changes nothing.
func Status(ctx context.Context, units []Unit, st State, ms []Migration) (Report, error) {
	start := time.Now()
	if err := Check(ms); err != nil {
		return Report{}, err
	}
	if st == nil {
		return Report{}, errors.New("migrate: no State")
	}
	versions, err := st.Versions(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("read unit versions: %w", err)
	}
	latest := Latest(ms)
	units = sortedUnits(units)
	rep := Report{Latest: latest, Units: make([]UnitStatus, len(units))}
	for i, u := range units {
		v := versions[u]
		s := UnitStatus{Unit: u, Name: u.String(), Shard: u.Shard, Mode: string(u.Mode), Tenant: u.Tenant.String(),
			Version: v, Latest: latest, State: StateCurrent}
		switch {
		case v < latest:
			s.State = StateBehind
		case v > latest:
			s.State = StateAhead
		}
		rep.Units[i] = s
	}
	rep.count()
	rep.Elapsed = time.Since(start)
	return rep, nil
}

func (r *Report) count() {
	r.Counts = map[string]int{}
	for _, u := range r.Units {
		r.Counts[u.State]++
	}
}

// sortedUnits returns units without duplicates in migration order: per
// shard, its pooled unit first, then tenants by id.
func sortedUnits(units []Unit) []Unit {
	seen := make(map[Unit]bool, len(units))
	out := make([]Unit, 0, len(units))
	for _, u := range units {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if wa, wb := wave(a), wave(b); wa != wb {
			return wa < wb
		}
		if a.Shard != b.Shard {
			return a.Shard < b.Shard
		}
		if a.Mode != b.Mode {
			return a.Mode < b.Mode
		}
		return a.Tenant.String() < b.Tenant.String()
	})
	return out
}

// wave is the wave a unit is migrated in: shards' pooled tables first
// (every pooled tenant depends on them), then schema and database tenants.
func wave(u Unit) int {
	if u.Mode == store.Pooled && u.Tenant.IsZero() {
		return 0
	}
	return 1
}

// Status reads the version of every unit of p — from p.State if set,
// otherwise from the units themselves through each shard's applier
// (VersionReader), leaving out units the applier does not migrate — and
// compares it with the latest migration. It changes nothing.
func (p Plan) Status(ctx context.Context) (Report, error) {
	if p.State != nil {
		return Status(ctx, p.Units, p.State, p.Migrations)
	}
	start := time.Now()
	if err := Check(p.Migrations); err != nil {
		return Report{}, err
	}
	byShard := map[string][]Unit{}
	var shards []string
	for _, u := range p.Units {
		if byShard[u.Shard] == nil {
			shards = append(shards, u.Shard)
		}
		byShard[u.Shard] = append(byShard[u.Shard], u)
	}
	sort.Strings(shards)
	versions := unitVersions{}
	var units []Unit
	for _, shard := range shards {
		a := p.Appliers[shard]
		if a == nil {
			return Report{}, fmt.Errorf("%w %q (unit %s): open the shard or remove its tenants from the catalog",
				ErrNoApplier, shard, byShard[shard][0])
		}
		vr, ok := a.(VersionReader)
		if !ok {
			return Report{}, fmt.Errorf("migrate: the applier of shard %q cannot read its units' versions (it is no VersionReader); give the plan a State", shard)
		}
		vs, err := vr.UnitVersions(ctx, byShard[shard])
		if err != nil {
			return Report{}, fmt.Errorf("read unit versions of shard %s: %w", shard, err)
		}
		for _, u := range byShard[shard] {
			if v, ok := vs[u]; ok {
				versions[u] = v
				units = append(units, u)
			}
		}
	}
	rep, err := Status(ctx, units, versions, p.Migrations)
	rep.Elapsed = time.Since(start)
	return rep, err
}

// unitVersions is a State over versions already read from the units.
type unitVersions map[Unit]int

func (v unitVersions) Versions(context.Context) (map[Unit]int, error) { return v, nil }

func (v unitVersions) SetVersion(context.Context, Unit, int) error { return nil }

// Run migrates every unit of p that is behind the latest migration. It
// reads all versions first (Plan.Status), so a run with nothing to apply
// opens no unit's write transaction. Units behind are migrated in two
// waves — the shards' pooled units, then schema and database tenants — with
// at most p.Concurrency at once. A unit's version is the one its applier
// records with each migration; a Plan.State is told after Apply succeeds.
//
// When a unit fails, no further unit starts, units in flight finish, and
// Run returns the report with an error that wraps a *UnitError naming the
// unit and its tenant (errors.Join of all failures). Every other unit is
// left on a consistent version: the one it had, or the latest.
func Run(ctx context.Context, p Plan) (Report, error) {
	start := time.Now()
	rep, err := p.Status(ctx)
	if err != nil {
		return rep, err
	}
	var todo [2][]int // indexes into rep.Units, per wave
	for i, s := range rep.Units {
		if s.State != StateBehind {
			continue
		}
		if p.Appliers[s.Unit.Shard] == nil {
			return rep, fmt.Errorf("%w %q (unit %s): open the shard or remove its tenants from the catalog",
				ErrNoApplier, s.Unit.Shard, s.Unit)
		}
		todo[wave(s.Unit)] = append(todo[wave(s.Unit)], i)
	}
	n := p.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	r := &runner{p: p, rep: &rep, total: len(todo[0]) + len(todo[1])}
	for _, w := range todo {
		for _, i := range w {
			rep.Units[i].State = StatePending
		}
	}
	for _, w := range todo {
		if len(r.errs) > 0 || ctx.Err() != nil {
			break
		}
		r.wave(ctx, w, n)
	}
	rep.count()
	rep.Elapsed = time.Since(start)
	if len(r.errs) > 0 {
		return rep, errors.Join(r.errs...)
	}
	if err := ctx.Err(); err != nil && rep.Counts[StatePending] > 0 {
		return rep, fmt.Errorf("migrate: stopped with %d units not started: %w", rep.Counts[StatePending], err)
	}
	return rep, nil
}

// runner holds one Run's shared state.
type runner struct {
	p     Plan
	total int

	mu   sync.Mutex // guards rep.Units, errs, done and calls to p.Progress
	rep  *Report
	errs []error
	done int
}

// wave migrates the units at indexes idx with at most n at once, and stops
// starting new ones after the first failure or when ctx is done.
func (r *runner) wave(ctx context.Context, idx []int, n int) {
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, i := range idx {
		sem <- struct{}{} // wait for a free slot before deciding to start
		r.mu.Lock()
		stop := len(r.errs) > 0
		r.mu.Unlock()
		if stop || ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			r.unit(ctx, i)
		}(i)
	}
	wg.Wait()
}

// unit migrates one unit and records the outcome.
func (r *runner) unit(ctx context.Context, i int) {
	r.mu.Lock()
	s := r.rep.Units[i]
	r.progress(Progress{Unit: s.Unit, From: s.Version, Index: r.done, Total: r.total})
	r.mu.Unlock()

	to, err := r.apply(ctx, s)

	r.mu.Lock()
	defer r.mu.Unlock()
	r.done++
	s = r.rep.Units[i]
	from := s.Version
	if err != nil {
		ue := &UnitError{Unit: s.Unit, From: s.Version, Err: err}
		r.errs = append(r.errs, ue)
		s.State, s.Error = StateFailed, err.Error()
		if to > s.Version {
			s.Version = to
		}
	} else {
		s.State, s.Version = StateMigrated, to
	}
	r.rep.Units[i] = s
	r.progress(Progress{Unit: s.Unit, From: from, To: s.Version, Err: err, Done: true,
		Index: r.done, Total: r.total})
}

// apply runs the unit's Apply and, with a Plan.State, records its new
// version there. A version the applier reached but the State could not
// record is returned with the error; the next run re-applies nothing (the
// backend records the version in the unit) and records it.
func (r *runner) apply(ctx context.Context, s UnitStatus) (int, error) {
	ms := r.p.Migrations[s.Version:] // Check guarantees Migrations[i].Version == i+1
	to, err := r.p.Appliers[s.Unit.Shard].Apply(ctx, s.Unit, ms)
	if err != nil {
		return to, err // to: what the unit reached, if the applier says
	}
	if to != s.Latest {
		return 0, fmt.Errorf("applier reached version %d, want %d", to, s.Latest)
	}
	if r.p.State == nil {
		return to, nil // the applier recorded it in the unit
	}
	// The unit is migrated: record it even if ctx was canceled meanwhile.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := r.p.State.SetVersion(rctx, s.Unit, to); err != nil {
		return to, fmt.Errorf("record version %d: %w", to, err)
	}
	return to, nil
}

// progress calls p.Progress; r.mu is held.
func (r *runner) progress(ev Progress) {
	if r.p.Progress != nil {
		r.p.Progress(ev)
	}
}
