package retention_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/retention"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

// fixture is a real catalog (SQLite), a real store (SQLite or PostgreSQL)
// whose placements are the catalog's, a real audit log and one clock for
// all of them, moved by the test.
type fixture struct {
	env   *tenanttest.Env
	cat   *catalog.Catalog
	log   *audit.Log
	reg   *prometheus.Registry
	mode  store.Mode
	clock atomic.Int64
	// txs records the tenant of every purge transaction, in order.
	mu  sync.Mutex
	txs []string
}

func (f *fixture) now() time.Time { return time.Unix(0, f.clock.Load()).UTC() }

func (f *fixture) advance(d time.Duration) { f.clock.Add(int64(d)) }

// engines runs fn on SQLite and on PostgreSQL (skipped without it), in
// every mode each hosts.
func engines(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			probe := newEnv(t, name, nil)
			for _, mode := range probe.Modes() {
				t.Run(string(mode), func(t *testing.T) {
					f := &fixture{mode: mode, reg: prometheus.NewRegistry()}
					f.clock.Store(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano())
					dir := t.TempDir()
					cat, err := catalog.Open(filepath.Join(dir, "control.db"), catalog.Options{Now: f.now})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { cat.Close() })
					f.cat = cat
					f.env = newEnv(t, name, &tenanttest.Options{Placements: cat, Now: f.now})
					if f.log, err = audit.OpenSQLite(filepath.Join(dir, "audit.db")); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { f.log.Close() })
					fn(t, f)
				})
			}
		})
	}
}

func newEnv(t *testing.T, engine string, opts *tenanttest.Options) *tenanttest.Env {
	if opts == nil {
		opts = &tenanttest.Options{}
	}
	if engine == "postgres" {
		return tenanttest.Postgres(t, *opts)
	}
	return tenanttest.New(t, *opts)
}

// sweeper returns a Sweeper over the fixture with the given bounds.
func (f *fixture) sweeper(t *testing.T, batch, perRun int) *retention.Sweeper {
	t.Helper()
	m, err := retention.NewMetrics(f.reg, func(id string) string { return id })
	if err != nil {
		t.Fatal(err)
	}
	s, err := retention.New(retention.Options{
		Rules: f.cat,
		Store: retention.RunnerFunc(func(ctx context.Context, fn func(*store.Tx) error) error {
			id, _ := tenant.FromContext(ctx)
			f.mu.Lock()
			f.txs = append(f.txs, id.String())
			f.mu.Unlock()
			return f.env.Router.Tx(ctx, fn)
		}),
		Audit: f.log, Now: f.now, BatchSize: batch, MaxPerRun: perRun, Metrics: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) tenant(t *testing.T, name string) context.Context {
	t.Helper()
	id := tenant.MustParse(name)
	if _, err := f.cat.CreateTenant(context.Background(), catalog.Tenant{ID: id,
		Placement: store.Placement{Mode: f.mode, Shard: tenanttest.Shard}}, f.env.Router.Provision); err != nil {
		t.Fatal(err)
	}
	return tenant.WithID(context.Background(), id)
}

func (f *fixture) rules(t *testing.T, name string, r catalog.Retention) {
	t.Helper()
	if err := f.cat.SetRetention(context.Background(), tenant.MustParse(name), r); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) put(t *testing.T, ctx context.Context, coll string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := f.env.Router.Tx(ctx, func(tx *store.Tx) error {
			_, _, err := tx.Put(ctx, coll, id, []byte(`{"id":"`+id+`"}`), store.IfMatch{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		f.advance(time.Second) // oldest first is well defined
	}
}

// ids lists a collection's record ids.
func (f *fixture) ids(t *testing.T, ctx context.Context, coll string) string {
	t.Helper()
	var ids []string
	if err := f.env.Router.ReadTx(ctx, func(tx *store.Tx) error {
		p, err := tx.List(ctx, coll, store.ListOptions{Limit: store.MaxLimit})
		for _, r := range p.Items {
			ids = append(ids, r.ID)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return strings.Join(ids, ",")
}

func (f *fixture) usage(t *testing.T, ctx context.Context) store.Usage {
	t.Helper()
	var u store.Usage
	if err := f.env.Router.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		u, err = tx.Usage(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return u
}

// purges returns the decisions of the chain's retention entries.
func (f *fixture) purges(t *testing.T, name string) []string {
	t.Helper()
	es, err := f.log.List(context.Background(), name, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if e.Action == retention.Action {
			if e.Principal != retention.Principal || e.Resource != "tenant/"+name {
				t.Fatalf("audit entry %+v", e)
			}
			out = append(out, e.Decision)
		}
	}
	return out
}

func sweep(t *testing.T, s *retention.Sweeper) []retention.Purged {
	t.Helper()
	got, err := s.Sweep(context.Background())
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	return got
}

// TestSweepPurgesOnlyExpiredRecordsOfRuledCollections: records older than
// their collection's rule go; newer ones, other collections and other
// tenants' records of the same collection, ids and age stay; usage drops
// by what went; the purge is audited once on the tenant's chain and
// counted in the metrics.
func TestSweepPurgesOnlyExpiredRecordsOfRuledCollections(t *testing.T) {
	engines(t, func(t *testing.T, f *fixture) {
		acme, globex := f.tenant(t, "acme"), f.tenant(t, "globex")
		f.rules(t, "acme", catalog.Retention{"logs": time.Hour})
		f.rules(t, "globex", catalog.Retention{"events": time.Hour})
		f.put(t, acme, "logs", "a", "b", "c")
		f.put(t, acme, "events", "a")
		f.put(t, globex, "logs", "a", "b", "c")
		f.advance(2 * time.Hour)
		f.put(t, acme, "logs", "d")
		before := f.usage(t, acme)
		globexUsage := f.usage(t, globex)

		s := f.sweeper(t, 0, 0)
		got := sweep(t, s)
		if len(got) != 2 || got[0].Tenant.String() != "acme" || got[0].Records != 3 || got[1].Records != 0 {
			t.Fatalf("sweep = %+v, want acme's 3 records, none of globex's", got)
		}
		if ids := f.ids(t, acme, "logs"); ids != "d" {
			t.Fatalf("acme's logs after the sweep: %s, want d", ids)
		}
		if ids := f.ids(t, acme, "events"); ids != "a" {
			t.Fatalf("acme's events (no rule): %s", ids)
		}
		if ids := f.ids(t, globex, "logs"); ids != "a,b,c" {
			t.Fatalf("globex's logs (its rule is for events): %s", ids)
		}
		if u := f.usage(t, acme); u.Records != before.Records-3 || u.Bytes != before.Bytes-got[0].Bytes || got[0].Bytes != 3*int64(len(`{"id":"a"}`)) {
			t.Fatalf("acme's usage %+v after purging %+v, was %+v", u, got[0], before)
		}
		if u := f.usage(t, globex); u != globexUsage {
			t.Fatalf("globex's usage moved: %+v, was %+v", u, globexUsage)
		}
		if d := f.purges(t, "acme"); fmt.Sprint(d) != "[purged:3]" {
			t.Fatalf("acme's audit: %v", d)
		}
		if d := f.purges(t, "globex"); len(d) != 0 {
			t.Fatalf("globex's audit: %v", d)
		}
		if n := counter(t, f.reg, "bulkhead_retention_purged_records_total", "acme"); n != 3 {
			t.Fatalf("purged records metric = %v", n)
		}
		// Nothing more to purge: no entry, the run still counted.
		sweep(t, s)
		if d := f.purges(t, "acme"); len(d) != 1 {
			t.Fatalf("an empty run audited: %v", d)
		}
		if n := counter(t, f.reg, "bulkhead_retention_runs_total", "ok"); n != 2 {
			t.Fatalf("runs metric = %v", n)
		}
	})
}

// counter returns the value of a counter with one label value.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}

// TestSweepResumesAfterItsBound: a run purges at most MaxPerRun records of
// a tenant, in batches, the oldest first; the next runs go on where it
// stopped, each audited with its own count, until nothing is left.
func TestSweepResumesAfterItsBound(t *testing.T) {
	engines(t, func(t *testing.T, f *fixture) {
		acme := f.tenant(t, "acme")
		f.rules(t, "acme", catalog.Retention{"a": time.Minute, "b": time.Minute})
		f.put(t, acme, "b", "b1", "b2")
		f.put(t, acme, "a", "a1", "a2", "a3", "a4", "a5")
		f.advance(time.Hour)
		s := f.sweeper(t, 2, 3)
		var counts []int64
		for range 4 {
			counts = append(counts, sweep(t, s)[0].Records)
		}
		if fmt.Sprint(counts) != "[3 3 1 0]" {
			t.Fatalf("records purged per run: %v, want [3 3 1 0]", counts)
		}
		if d := f.purges(t, "acme"); fmt.Sprint(d) != "[purged:3 purged:3 purged:1]" {
			t.Fatalf("audit: %v", d)
		}
		if ids := f.ids(t, acme, "a") + "|" + f.ids(t, acme, "b"); ids != "|" {
			t.Fatalf("left: %s", ids)
		}
		if u := f.usage(t, acme); u != (store.Usage{}) {
			t.Fatalf("usage after purging everything: %+v", u)
		}
	})
}

// TestSweepIsRoundRobin: a tenant with many expired records gets one
// bounded batch per round, like the others, so it cannot make them wait
// for all of its own.
func TestSweepIsRoundRobin(t *testing.T) {
	engines(t, func(t *testing.T, f *fixture) {
		big, small := f.tenant(t, "big"), f.tenant(t, "small")
		for _, n := range []string{"big", "small"} {
			f.rules(t, n, catalog.Retention{"logs": time.Minute})
		}
		for i := range 8 {
			f.put(t, big, "logs", fmt.Sprintf("r%d", i))
		}
		f.put(t, small, "logs", "r0", "r1", "r2")
		f.advance(time.Hour)
		got := sweep(t, f.sweeper(t, 2, 100))
		if got[0].Records != 8 || got[1].Records != 3 {
			t.Fatalf("sweep = %+v", got)
		}
		// small is done after its second batch (the third finds nothing);
		// big never runs twice in a row while small has work.
		want := []string{"big", "small", "big", "small", "big", "big", "big"}
		if !slices.Equal(f.txs[:len(want)], want) {
			t.Fatalf("transactions in the order %v, want it to start %v", f.txs, want)
		}
	})
}

// TestSweepIgnoresAnEarlierIncarnationsRules: a tenant deleted and created
// again with the same id does not inherit the rules of the old one.
func TestSweepIgnoresAnEarlierIncarnationsRules(t *testing.T) {
	engines(t, func(t *testing.T, f *fixture) {
		f.tenant(t, "acme")
		f.rules(t, "acme", catalog.Retention{"logs": time.Minute})
		if err := f.cat.Offboard(context.Background(), tenant.MustParse("acme"), f.env.Router.Drop); err != nil {
			t.Fatal(err)
		}
		f.advance(time.Second)
		acme := f.tenant(t, "acme")
		f.put(t, acme, "logs", "a", "b")
		f.advance(time.Hour)
		if got := sweep(t, f.sweeper(t, 0, 0)); len(got) != 0 {
			t.Fatalf("sweep of the new acme = %+v", got)
		}
		if ids := f.ids(t, acme, "logs"); ids != "a,b" {
			t.Fatalf("new acme's logs: %s", ids)
		}
	})
}
