// Package storetest is the conformance suite every store.Backend runs, in
// every isolation mode it supports: a backend or mode is done when it passes
// Run. It drives the backend only through a store.Router, as Bulkhead does,
// and checks both record semantics and the tenancy contract — no result may
// differ from the reference semantics in package store, and no tenant may
// ever see another tenant's data.
//
// A backend package runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		for _, mode := range []store.Mode{store.Pooled, store.Database} {
//			t.Run(string(mode), func(t *testing.T) {
//				storetest.Run(t, func(t *testing.T) store.Backend {
//					b, err := sqlite.Open(t.TempDir(), sqlite.Options{})
//					if err != nil {
//						t.Fatal(err)
//					}
//					return b
//				}, mode)
//			})
//		}
//	}
//
// Backends with more capabilities run more parts: RunOwnSQL for a team's
// own SQL (store.SQLBackend), with the engine's attacks on the tenant
// boundary; RunMigrations for migrate.Applier; RunMixed for tenants in
// several modes and on several shards behind one Router (NewMixedEnv).
//
// The isolation property test is seeded; it logs its seed, and
// -storetest.seed=N replays a failure. -storetest.ops sets its length
// (3000 operations; 1000 under the race detector).
package storetest

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/keys"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var (
	seedFlag = flag.Int64("storetest.seed", 0, "seed of the storetest isolation property test (0: random)")
	opsFlag  = flag.Int("storetest.ops", defaultOps, "operations in the storetest isolation property test (default 3000, 1000 under -race)")
)

// Shard is the shard name under which Env and Run register the backend.
const Shard = "test"

// Run runs the whole conformance suite. Each test gets a fresh backend from
// newBackend, which Run closes when the test ends; tenants are hosted in
// mode. Tests run in parallel, so newBackend must be safe to call
// concurrently (t.TempDir is). If the backend does not support mode, Run
// fails.
func Run(t *testing.T, newBackend func(t *testing.T) store.Backend, mode store.Mode) {
	t.Helper()
	run(t, func(t *testing.T) *Env { return NewEnv(t, newBackend(t), mode) })
}

// RunSealed runs the whole conformance suite on a Router that encrypts
// record data with per-tenant keys (package keys), and the attacks on
// sealed records: every backend must give the same answers with the data
// sealed as in the clear.
func RunSealed(t *testing.T, newBackend func(t *testing.T) store.Backend, mode store.Mode) {
	t.Helper()
	newEnv := func(t *testing.T) *Env { return NewSealedEnv(t, newBackend(t), mode) }
	run(t, newEnv)
	runSealedAttacks(t, newEnv)
}

func run(t *testing.T, newEnv func(t *testing.T) *Env) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, *Env)
	}{
		{"PutCreatesThenReplaces", testPutCreateReplace},
		{"PutKeepsCreatedAtAndMovesUpdatedAt", testPutTimestamps},
		{"IfMatchGuardsPut", testIfMatchPut},
		{"CreateMakesUniqueOpaqueIDs", testCreate},
		{"GetOfMissingRecordIsNotFound", testGetMissing},
		{"DeleteRemovesAndHonoursIfMatch", testDelete},
		{"DataRoundTripsCompacted", testDataRoundTrip},
		{"TxSeesItsOwnWrites", testOwnWrites},
		{"ReadTxSeesCommittedDataAndRefusesWrites", testReadOnly},
		{"FinishedTxRefusesUse", testTxDone},
		{"ListPagesInIDByteOrder", testListPaging},
		{"ListRefusesBadLimitsAndFilters", testListLimits},
		{"FiltersAgreeWithFilterMatches", testFilters},
		{"FilteredListsPage", testFilteredPaging},
		{"TokenFiltersAgreeWithQueryMatches", testTokenFilters},
		{"TokenCountMismatchIsRefused", testTokenCountMismatch},
		{"CursorsAreBoundToTenantCollectionAndFilter", testCursorBinding},
		{"TamperedCursorsAreRefused", testCursorTamper},
		{"CollectionsCountRecords", testCollections},
		{"BeginWithoutTenantFailsClosed", testNoTenant},
		{"UnknownTenantIsRefused", testUnknownTenant},
		{"TxRefusesAnotherTenantsContext", testTenantMismatch},
		{"RollbackDiscardsWrites", testRollback},
		{"PanicInTxRollsBack", testPanicRollback},
		{"SameIDsInTwoTenantsAreIndependent", testSameIDs},
		{"DropThenProvisionStartsEmpty", testDropReprovision},
		{"ConcurrentWritersNeverLoseAnUpdate", testConcurrentWriters},
		{"IsolationProperty", testIsolationProperty},
		{"QuotasHoldUnderConcurrentWriters", testQuotaConcurrent},
		{"QuotasCountBytesAndFreeOnDelete", testQuotaBytes},
		{"UsageAfterWritesMatchesStoredUsage", testUsageAfterWrites},
		{"PurgeDeletesOldestFirstAndFreesUsage", testPurgeOldestFirst},
		{"PurgeStopsAtMax", testPurgeStopsAtMax},
		{"PurgeStaysInItsTenant", testPurgeStaysInTenant},
		{"PurgeRefusesBadInput", testPurgeRefusesBadInput},
		{"EventsFollowEveryChangeInCommitOrder", testEventsFollowChanges},
		{"RolledBackChangesLeaveNoEvent", testEventsRollback},
		{"EventsStayInTheirTenant", testEventsIsolation},
		{"EventsFilterByCollection", testEventsCollections},
		{"EventsCarryDataOnlyWhenAsked", testEventsData},
		{"TrimmingKeepsAPrefixAndReadersNoticeIt", testEventsTrim},
		{"EventNumbersSurviveTrimmingEverything", testEventsTrimAll},
		{"ReprovisionedTenantStartsANewOutbox", testEventsReprovision},
		{"ConsumerOffsetsAreTheTenants", testEventOffsets},
		{"ConcurrentWritersGetGaplessEventNumbers", testEventsConcurrent},
		{"PurgeAppendsDeleteEvents", testEventsPurge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newEnv(t))
		})
	}
}

// Env is a Router over one backend with an in-memory placement map and a
// deterministic clock: the harness Run gives each test, exported so backend
// packages can reuse it in their own tests and benchmarks.
type Env struct {
	Router     *store.Router // over Backend, on shard Shard
	Placements *Placements   // the Router's placements; Tenant and Offboard maintain them
	Backend    store.Backend // the backend under test; nil in a mixed Env
	Mode       store.Mode    // the mode Tenant provisions in; empty in a mixed Env
	Quotas     *Quotas       // the Router's store.Quotas; no quotas until set
	// Keys seals record data in a sealed Env (NewSealedEnv); nil otherwise.
	Keys *keys.Manager
	// EventData is the Router's store.EventData: no tenant's events carry
	// data until set.
	EventData *EventData

	committedMu sync.Mutex
	committed   map[tenant.ID]int // EventsCommitted calls per tenant; guarded by committedMu

	// Shards maps shard names to backends: {Shard: Backend}, or every shard
	// of a mixed Env.
	Shards map[string]store.Backend

	places  []store.Placement // a mixed Env's placements, taken in turn; fixed by NewMixedEnv
	placeMu sync.Mutex
	next    int // the index in places of the next new tenant's placement; guarded by placeMu

	clockMu sync.Mutex
	clock   time.Time // guarded by clockMu
}

// NewEnv returns an Env over b whose tenants live in mode (on shard Shard).
// The Router, and with it b, is closed when tb's test ends.
func NewEnv(tb testing.TB, b store.Backend, mode store.Mode) *Env {
	tb.Helper()
	e := newEnv(map[string]store.Backend{Shard: b})
	e.Backend, e.Mode = b, mode
	e.newRouter(tb)
	if err := e.Router.Supports(store.Placement{Mode: mode, Shard: Shard}); err != nil {
		tb.Fatalf("backend cannot host mode %s: %v", mode, err)
	}
	return e
}

// newEnv returns an Env over shards, without its Router.
func newEnv(shards map[string]store.Backend) *Env {
	return &Env{
		Placements: &Placements{},
		Quotas:     &Quotas{},
		EventData:  &EventData{},
		committed:  map[tenant.ID]int{},
		Shards:     shards,
		clock:      time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC),
	}
}

// newRouter makes e.Router over e.Shards and closes it when tb's test ends.
func (e *Env) newRouter(tb testing.TB) {
	tb.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	r, err := store.NewRouter(store.Config{
		Placements: e.Placements,
		Backends:   e.Shards,
		CursorKey:  key,
		Now:        e.now,
		Quotas:     e.Quotas,
		Sealer:     e.sealer(),
		EventData:  e.EventData,
		EventsCommitted: func(id tenant.ID) {
			e.committedMu.Lock()
			e.committed[id]++
			e.committedMu.Unlock()
		},
	})
	if err != nil {
		for _, b := range e.Shards {
			_ = b.Close()
		}
		tb.Fatalf("new router: %v", err)
	}
	e.Router = r
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Errorf("close router: %v", err)
		}
	})
}

// Now reads the Env's clock (the Router's Config.Now), which moves a
// little at each reading.
func (e *Env) Now() time.Time { return e.now() }

// now is a clock that moves a little over a millisecond per call, with
// sub-microsecond noise the Router must truncate.
func (e *Env) now() time.Time {
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	e.clock = e.clock.Add(time.Millisecond + 1001*time.Nanosecond)
	return e.clock
}

// Tenant provisions tenant name in the Env's mode (in a mixed Env: at the
// next of its placements, in turn), registers its placement and returns a
// context carrying it.
func (e *Env) Tenant(tb testing.TB, name string) context.Context {
	tb.Helper()
	id, err := tenant.Parse(name)
	if err != nil {
		tb.Fatal(err)
	}
	return e.tenantAt(tb, id, e.nextPlacement())
}

// tenantAt provisions tenant id at p, registers its placement and returns a
// context carrying it.
func (e *Env) tenantAt(tb testing.TB, id tenant.ID, p store.Placement) context.Context {
	tb.Helper()
	name := id.String()
	if err := e.Router.Provision(context.Background(), id, p); err != nil {
		tb.Fatalf("provision %s: %v", name, err)
	}
	e.Placements.Set(id, p)
	return tenant.WithID(context.Background(), id)
}

// Offboard removes tenant name's placement and drops its data, as the
// control plane does. In a mixed Env a tenant without a placement is
// dropped at every placement (Drop is idempotent).
func (e *Env) Offboard(tb testing.TB, name string) {
	tb.Helper()
	id := tenant.MustParse(name)
	drop := []store.Placement{{Mode: e.Mode, Shard: Shard}}
	if p, err := e.Placements.Placement(context.Background(), id); err == nil {
		drop = []store.Placement{p}
	} else if e.places != nil {
		drop = e.places
	}
	e.Placements.Delete(id)
	for _, p := range drop {
		if err := e.Router.Drop(context.Background(), id, p); err != nil {
			tb.Fatalf("drop %s at %v: %v", name, p, err)
		}
	}
}

// PlacementOf returns where tenant name lives, or the zero Placement if it
// has none.
func (e *Env) PlacementOf(name string) store.Placement {
	p, _ := e.Placements.Placement(context.Background(), tenant.MustParse(name))
	return p
}

// nextPlacement is where the next new tenant goes: the Env's mode on shard
// Shard, or in a mixed Env its placements in turn.
func (e *Env) nextPlacement() store.Placement {
	e.placeMu.Lock()
	defer e.placeMu.Unlock()
	if len(e.places) == 0 {
		return store.Placement{Mode: e.Mode, Shard: Shard}
	}
	p := e.places[e.next%len(e.places)]
	e.next++
	return p
}

// Placements is a concurrency-safe in-memory store.Placements: a map from
// tenant to placement. The zero value is empty and ready to use.
type Placements struct {
	mu    sync.RWMutex
	m     map[tenant.ID]store.Placement // guarded by mu
	since map[tenant.ID]time.Time       // guarded by mu; see Born
}

var _ store.Placements = (*Placements)(nil)

// Set places tenant id at p.
func (p *Placements) Set(id tenant.ID, pl store.Placement) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[tenant.ID]store.Placement)
	}
	p.m[id] = pl
}

// Born sets the start of tenant id's current incarnation
// (store.IncarnationStarts); without it, IncarnationStart answers the zero
// time, an incarnation older than any replica's lag.
func (p *Placements) Born(id tenant.ID, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.since == nil {
		p.since = make(map[tenant.ID]time.Time)
	}
	p.since[id] = at
}

// IncarnationStart implements store.IncarnationStarts.
func (p *Placements) IncarnationStart(_ context.Context, id tenant.ID) (time.Time, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.since[id], nil
}

// Delete forgets tenant id.
func (p *Placements) Delete(id tenant.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, id)
}

// Placement returns where tenant id lives, or an error wrapping
// store.ErrUnknownTenant.
func (p *Placements) Placement(_ context.Context, id tenant.ID) (store.Placement, error) {
	p.mu.RLock()
	pl, ok := p.m[id]
	p.mu.RUnlock()
	if !ok {
		return store.Placement{}, fmt.Errorf("%w %q", store.ErrUnknownTenant, id)
	}
	return pl, nil
}
