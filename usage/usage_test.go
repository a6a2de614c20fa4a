package usage_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/usage"
)

// scrape is what the text exposition of a registry says about tenant
// usage: the records and bytes series by tenant label, the tracked count
// and whether a sweep time shows.
type scrape struct {
	records, bytes map[string]int64
	tracked        int64
	hasSweep       bool
}

func scrapeOf(t *testing.T, reg *prometheus.Registry) scrape {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	s := scrape{records: map[string]int64{}, bytes: map[string]int64{}, tracked: -1}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			t.Fatalf("bad sample %q: %v", line, err)
		}
		metric, labels, _ := strings.Cut(name, "{")
		series := map[string]map[string]int64{"bulkhead_tenant_usage_records": s.records, "bulkhead_tenant_usage_bytes": s.bytes}[metric]
		switch {
		case metric == "bulkhead_tenant_usage_last_sweep_timestamp_seconds":
			s.hasSweep = true
		case metric == "bulkhead_tenant_usage_tracked":
			s.tracked = int64(v)
		case series != nil:
			label, ok := strings.CutPrefix(labels, `tenant="`)
			label, ok2 := strings.CutSuffix(label, `"}`)
			if !ok || !ok2 || strings.Contains(label, `"`) {
				t.Fatalf("%s has labels other than tenant: %q", metric, line)
			}
			if _, dup := series[label]; dup {
				t.Fatalf("%s has tenant=%q twice", metric, label)
			}
			series[label] = int64(v)
		}
	}
	return s
}

// load is a tenant of a test and its usage.
type load struct {
	id      string
	records int64
	bytes   int64
}

// wantTop checks that got names exactly the n biggest of ls (more bytes,
// then more records, then the smaller id) with their own numbers and
// sums the others under _other.
func wantTop(t *testing.T, got scrape, ls []load, n int) {
	t.Helper()
	ranked := slices.Clone(ls)
	slices.SortFunc(ranked, func(a, b load) int {
		switch {
		case a.bytes != b.bytes:
			return int(b.bytes - a.bytes)
		case a.records != b.records:
			return int(b.records - a.records)
		}
		return strings.Compare(a.id, b.id)
	})
	records, bytes := map[string]int64{"_other": 0}, map[string]int64{"_other": 0}
	for i, l := range ranked {
		label := l.id
		if i >= n {
			label = "_other"
		}
		records[label] += l.records
		bytes[label] += l.bytes
	}
	if fmt.Sprint(got.records) != fmt.Sprint(records) || fmt.Sprint(got.bytes) != fmt.Sprint(bytes) {
		t.Fatalf("usage gauges:\nrecords %v\nbytes   %v\nwant records %v\nwant bytes   %v", got.records, got.bytes, records, bytes)
	}
	if got.tracked != int64(len(ls)) {
		t.Fatalf("bulkhead_tenant_usage_tracked %d, want %d", got.tracked, len(ls))
	}
}

// loads are 30 tenants. The five biggest by bytes are big-a, big-b, mid,
// tie-x and tie-y: tie-x, tie-y and tie-z have the same bytes, tie-z fewer
// records (so it ranks last of the three) and tie-x the smaller id (so it
// ranks before tie-y).
func loads() []load {
	ls := []load{
		{"big-a", 4, 2032}, {"big-b", 2, 2016}, {"mid", 3, 1500},
		{"tie-y", 2, 1216}, {"tie-x", 2, 1216}, {"tie-z", 1, 1216}, {"empty", 0, 0},
	}
	for i := 1; len(ls) < 30; i++ {
		ls = append(ls, load{fmt.Sprintf("small-%02d", i), int64(1 + i%3), int64(10 * i)})
	}
	return ls
}

// TestCollectorNamesTheTopTenantsAndSumsTheRest: the gauges name exactly
// the n biggest tenants (ties by records, then id) with their own
// numbers, sum the rest under _other, and so carry min(n, tenants)+1
// label values whatever the number of tenants.
func TestCollectorNamesTheTopTenantsAndSumsTheRest(t *testing.T) {
	for _, n := range []int{1, 3, 5, 50} {
		t.Run(fmt.Sprintf("with the top %d", n), func(t *testing.T) {
			tr := usage.NewTracker(0)
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(usage.NewCollector(tr, n))
			ls := loads()
			for _, l := range ls {
				tr.Observe(tenant.MustParse(l.id), store.Usage{Records: l.records, Bytes: l.bytes}, tr.Begin())
			}
			got := scrapeOf(t, reg)
			wantTop(t, got, ls, n)
			if want := min(n, len(ls)) + 1; len(got.records) != want || len(got.bytes) != want {
				t.Fatalf("%d and %d label values, want %d", len(got.records), len(got.bytes), want)
			}
			if got.hasSweep {
				t.Fatal("a sweep time shows before any sweep")
			}
		})
	}
}

// env is a router over one SQLite data directory with tenants in pooled
// and database mode, and the tenants a sweep lists.
type env struct {
	*storetest.Env
	mu      sync.Mutex
	listed  map[string]bool // tenant → serving; guarded by mu
	listErr error           // guarded by mu
}

func newEnv(t *testing.T) *env {
	t.Helper()
	be, err := sqlite.Open(t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{
		Env: storetest.NewMixedEnv(t, map[string]store.Backend{"local": be},
			[]store.Placement{{Mode: store.Pooled, Shard: "local"}, {Mode: store.Database, Shard: "local"}}),
		listed: map[string]bool{},
	}
}

// tenant provisions name (pooled and database in turn) and lists it as
// serving.
func (e *env) tenant(t *testing.T, name string) context.Context {
	ctx := e.Tenant(t, name)
	e.list(name, true)
	return ctx
}

func (e *env) list(name string, serving bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.listed[name] = serving
}

// Tenants implements usage.Tenants over e.listed.
func (e *env) Tenants(_ context.Context, after string, limit int) ([]usage.Tenant, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.listErr != nil {
		return nil, e.listErr
	}
	var out []usage.Tenant
	for name, serving := range e.listed {
		if name > after {
			out = append(out, usage.Tenant{ID: tenant.MustParse(name), Serving: serving})
		}
	}
	slices.SortFunc(out, func(a, b usage.Tenant) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return out[:min(limit, len(out))], nil
}

func put(t *testing.T, tr *usage.Tracker, r usage.Router, ctx context.Context, c, id, data string) {
	t.Helper()
	if err := tr.WriteTx(ctx, r, func(tx *store.Tx) error {
		_, _, err := tx.Put(ctx, c, id, []byte(data), store.IfMatch{})
		return err
	}); err != nil {
		t.Fatalf("put %s/%s: %v", c, id, err)
	}
}

func usageOf(tr *usage.Tracker, name string) (store.Usage, bool) {
	for _, r := range tr.Snapshot(1 << 20).Top {
		if r.ID.String() == name {
			return r.Usage, true
		}
	}
	return store.Usage{}, false
}

// TestWriteTxFeedsTheTracker: committed writes and deletes keep a tenant's
// entry current without a sweep; a write refused for its quota and a
// failed transaction change nothing, and one tenant's writes never touch
// another's entry.
func TestWriteTxFeedsTheTracker(t *testing.T) {
	e := newEnv(t)
	tr := usage.NewTracker(0)
	acme, globex := e.tenant(t, "acme"), e.tenant(t, "globex")
	put(t, tr, e.Router, acme, "c", "a", `{"v":1}`)
	put(t, tr, e.Router, acme, "c", "b", `{"v":22}`)
	if u, _ := usageOf(tr, "acme"); u != (store.Usage{Records: 2, Bytes: int64(len(`{"v":1}`) + len(`{"v":22}`))}) {
		t.Fatalf("after acme's writes: %+v", u)
	}
	if _, ok := usageOf(tr, "globex"); ok {
		t.Fatal("acme's writes put globex in the tracker")
	}
	put(t, tr, e.Router, acme, "c", "b", `{"v":333}`)
	if err := tr.WriteTx(acme, e.Router, func(tx *store.Tx) error { return tx.Delete(acme, "c", "a", store.IfMatch{}) }); err != nil {
		t.Fatal(err)
	}
	want := store.Usage{Records: 1, Bytes: int64(len(`{"v":333}`))}
	if u, _ := usageOf(tr, "acme"); u != want {
		t.Fatalf("after an update and a delete: %+v, want %+v", u, want)
	}

	e.Quotas.Set(tenant.MustParse("acme"), 1, 0)
	err := tr.WriteTx(acme, e.Router, func(tx *store.Tx) error {
		_, _, err := tx.Put(acme, "c", "z", []byte(`{"v":4444}`), store.IfMatch{})
		return err
	})
	if !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("write over quota: %v", err)
	}
	failed := errors.New("the handler failed")
	if err := tr.WriteTx(acme, e.Router, func(tx *store.Tx) error {
		if _, _, err := tx.Put(acme, "c", "b", []byte(`{"v":"rolled back"}`), store.IfMatch{}); err != nil {
			return err
		}
		return failed
	}); !errors.Is(err, failed) {
		t.Fatalf("failed transaction: %v", err)
	}
	if u, _ := usageOf(tr, "acme"); u != want {
		t.Fatalf("after a refused write and a rollback: %+v, want %+v", u, want)
	}

	put(t, tr, e.Router, globex, "c", "a", `{"v":"globex"}`)
	if u, _ := usageOf(tr, "globex"); u != (store.Usage{Records: 1, Bytes: int64(len(`{"v":"globex"}`))}) {
		t.Fatalf("globex: %+v", u)
	}
	if u, _ := usageOf(tr, "acme"); u != want {
		t.Fatalf("globex's write changed acme's entry: %+v", u)
	}
}

// TestSweepReadsEveryServingTenant: a sweep reads each listed tenant's
// usage through its own placement (pooled and database), removes the
// tenants that are not serving or have no placement any more, and drops
// the tenants it did not list; a tenant whose read fails keeps its last
// usage, and a failed listing keeps everything.
func TestSweepReadsEveryServingTenant(t *testing.T) {
	e := newEnv(t)
	tr := usage.NewTracker(0)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(usage.NewCollector(tr, 3))
	other := usage.NewTracker(0) // the writes below feed this one, not tr
	var ls []load
	for i, name := range []string{"aa", "bb", "cc", "dd", "ee"} {
		ctx := e.tenant(t, name)
		l := load{id: name}
		for j := range i + 1 {
			data := `{"p":"` + strings.Repeat("x", 100*(i+1)) + `"}`
			put(t, other, e.Router, ctx, fmt.Sprintf("c%d", j%2), strconv.Itoa(j), data)
			l.records++
			l.bytes += int64(len(data))
		}
		ls = append(ls, l)
	}
	e.tenant(t, "empty")
	ls = append(ls, load{id: "empty"})
	tr.Observe(tenant.MustParse("ghost"), store.Usage{Records: 1, Bytes: 1 << 30}, tr.Begin())
	tr.Observe(tenant.MustParse("dd"), store.Usage{Records: 99, Bytes: 1 << 20}, tr.Begin()) // stale

	sw := usage.NewSweeper(tr, usage.SweeperOptions{Router: e.Router, Tenants: e, Rate: -1})
	if err := sw.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := scrapeOf(t, reg)
	wantTop(t, got, ls, 3)
	if !got.hasSweep {
		t.Fatal("no sweep time after a sweep")
	}

	// ee is being deleted; dd is listed but its placement is gone.
	e.list("ee", false)
	e.Placements.Delete(tenant.MustParse("dd"))
	if err := sw.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	ls = slices.DeleteFunc(ls, func(l load) bool { return l.id == "dd" || l.id == "ee" })
	wantTop(t, scrapeOf(t, reg), ls, 3)

	// A failed listing is an error and changes nothing.
	e.mu.Lock()
	e.listErr = errors.New("catalog unreachable")
	e.mu.Unlock()
	if err := sw.Sweep(t.Context()); err == nil || !strings.Contains(err.Error(), "catalog unreachable") {
		t.Fatalf("sweep with a failing listing: %v", err)
	}
	wantTop(t, scrapeOf(t, reg), ls, 3)
}

// TestSweepIsPacedAndStopsWithItsContext: a paced sweep reads no faster
// than its rate, and a cancelled one returns the context's error.
func TestSweepIsPacedAndStopsWithItsContext(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.tenant(t, fmt.Sprintf("t%d", i))
	}
	tr := usage.NewTracker(0)
	sw := usage.NewSweeper(tr, usage.SweeperOptions{Router: e.Router, Tenants: e, Rate: 50})
	began := time.Now()
	if err := sw.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A lower bound only: a ticker never ticks early, so this cannot flake.
	if took := time.Since(began); took < 5*(time.Second/50) {
		t.Fatalf("5 tenants at 50 a second took %s", took)
	}
	if n := tr.Snapshot(10).Tracked; n != 5 {
		t.Fatalf("%d tenants tracked, want 5", n)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := sw.Sweep(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sweep: %v", err)
	}
}

// TestRunSweepsAtOnceAndStops: Run sweeps at once and then every
// interval, and returns when its context ends.
func TestRunSweepsAtOnceAndStops(t *testing.T) {
	e := newEnv(t)
	ctx := e.tenant(t, "acme")
	tr := usage.NewTracker(0)
	put(t, usage.NewTracker(0), e.Router, ctx, "c", "a", `{"v":1}`)
	sw := usage.NewSweeper(tr, usage.SweeperOptions{Router: e.Router, Tenants: e, Rate: -1})
	rctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sw.Run(rctx, time.Hour)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if u, ok := usageOf(tr, "acme"); ok && u.Records == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not sweep at once")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
}
