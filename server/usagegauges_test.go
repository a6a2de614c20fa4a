package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// usageScrape is what /metrics says about tenant usage: the records and
// bytes series by tenant label, and the tracked count.
type usageScrape struct {
	records, bytes map[string]int64
	tracked        int64
	hasSweep       bool
}

// scrapeUsage reads /metrics over HTTP and parses the usage gauges out of
// the text format.
func (e *env) scrapeUsage() usageScrape {
	e.t.Helper()
	r := e.req("GET", "/metrics", "", nil)
	want(e.t, r, 200, "")
	return parseUsage(e.t, string(r.body))
}

func parseUsage(t testing.TB, body string) usageScrape {
	t.Helper()
	s := usageScrape{records: map[string]int64{}, bytes: map[string]int64{}, tracked: -1}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		series := map[string]map[string]int64{
			"bulkhead_tenant_usage_records": s.records,
			"bulkhead_tenant_usage_bytes":   s.bytes,
		}
		metric, labels, _ := strings.Cut(name, "{")
		if metric == "bulkhead_tenant_usage_last_sweep_timestamp_seconds" {
			s.hasSweep = true
		}
		if metric != "bulkhead_tenant_usage_tracked" && series[metric] == nil {
			continue
		}
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			t.Fatalf("bad sample %q: %v", line, err)
		}
		if metric == "bulkhead_tenant_usage_tracked" {
			s.tracked = int64(v)
			continue
		}
		label, ok := strings.CutPrefix(labels, `tenant="`)
		label, ok2 := strings.CutSuffix(label, `"}`)
		if !ok || !ok2 || strings.Contains(label, `"`) {
			t.Fatalf("%s has labels other than tenant: %q", metric, line)
		}
		if _, dup := series[metric][label]; dup {
			t.Fatalf("%s has tenant=%q twice", metric, label)
		}
		series[metric][label] = int64(v)
	}
	return s
}

// usageCase is a tenant of the test and the data it stores.
type usageCase struct {
	id        string
	isolation string
	records   int
	pad       int // each record is {"p":"<pad x's>"}, pad+8 bytes
}

func (c usageCase) bytes() int64 { return int64(c.records * (c.pad + 8)) }

// usageCases are 30 tenants in both storage modes. The five biggest by
// bytes are big-a, big-b, mid, tie-x and tie-y: tie-x, tie-y and tie-z
// have the same bytes, tie-z fewer records (so it ranks last of the
// three) and tie-x the smaller id (so it ranks before tie-y).
func usageCases() []usageCase {
	cs := []usageCase{
		{"big-a", "pooled", 4, 500},    // 2032 bytes
		{"big-b", "database", 2, 1000}, // 2016
		{"mid", "pooled", 3, 492},      // 1500
		{"tie-y", "database", 2, 600},  // 1216
		{"tie-x", "pooled", 2, 600},    // 1216
		{"tie-z", "pooled", 1, 1208},   // 1216, one record
		{"empty", "database", 0, 0},
	}
	for i := 1; len(cs) < 30; i++ {
		iso := "pooled"
		if i%2 == 0 {
			iso = "database"
		}
		cs = append(cs, usageCase{fmt.Sprintf("small-%02d", i), iso, 1 + i%3, 10 * i}) // at most 3×258 bytes
	}
	return cs
}

// load creates the tenants and writes their records over the API.
func (e *env) load(cs []usageCase) {
	e.t.Helper()
	for _, c := range cs {
		tok := e.tenantWithKey(c.id, c.isolation)
		for j := range c.records {
			body := `{"p":"` + strings.Repeat("x", c.pad) + `"}`
			want(e.t, e.req("PUT", fmt.Sprintf("/v1/collections/c%d/records/r%d", j%2, j), tok, body), 201, "")
		}
	}
}

// checkTop checks that the scrape names exactly the n biggest tenants of
// cs with their own records and bytes, and sums the rest under _other.
func checkTop(t *testing.T, got usageScrape, cs []usageCase, n int) {
	t.Helper()
	ranked := slices.Clone(cs)
	slices.SortFunc(ranked, func(a, b usageCase) int {
		switch {
		case a.bytes() != b.bytes():
			return int(b.bytes() - a.bytes())
		case a.records != b.records:
			return b.records - a.records
		}
		return strings.Compare(a.id, b.id)
	})
	if len(ranked) < n {
		n = len(ranked)
	}
	wantRecords := map[string]int64{"_other": 0}
	wantBytes := map[string]int64{"_other": 0}
	for i, c := range ranked {
		label := c.id
		if i >= n {
			label = "_other"
		}
		wantRecords[label] += int64(c.records)
		wantBytes[label] += c.bytes()
	}
	if !mapsEqual(got.records, wantRecords) || !mapsEqual(got.bytes, wantBytes) {
		t.Fatalf("usage gauges:\nrecords %v\nbytes   %v\nwant records %v\nwant bytes   %v",
			got.records, got.bytes, wantRecords, wantBytes)
	}
	if got.tracked != int64(len(cs)) {
		t.Fatalf("bulkhead_tenant_usage_tracked %d, want %d", got.tracked, len(cs))
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestUsageGaugesTopTenants: 30 tenants in both modes, N=5. After their
// writes, and again after a sweep,
// /metrics names exactly the five biggest (ties by records, then id) with
// their exact numbers — a tenant's numbers are its own, never another's —
// and _other holds the sum of the other 25; no other tenant label
// appears. A deleted tenant leaves the gauges at once, and an entry for a
// tenant the catalog does not know is dropped by the next sweep.
func TestUsageGaugesTopTenants(t *testing.T) {
	e := newEnvIn(t, t.TempDir(), server.Options{UsageTopTenants: 5, UsageSweepInterval: -1})
	cs := usageCases()
	e.load(cs)

	// Before any sweep, the writes have fed the gauges of every tenant
	// that wrote something.
	wrote := slices.DeleteFunc(slices.Clone(cs), func(c usageCase) bool { return c.records == 0 })
	if got := e.scrapeUsage(); got.hasSweep {
		t.Fatalf("before any sweep: %+v", got)
	} else {
		checkTop(t, got, wrote, 5)
	}
	if err := e.srv.SweepUsageNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := e.scrapeUsage()
	checkTop(t, got, cs, 5)
	if _, ok := got.records["tie-z"]; ok || !got.hasSweep {
		t.Fatalf("tie-z should rank sixth (fewer records), and the sweep time should show: %+v", got)
	}

	// Offboarding removes the tenant at once; the next sweep agrees.
	want(t, e.req("DELETE", "/v1/admin/tenants/big-b", e.op, nil), 204, "")
	cs = slices.DeleteFunc(cs, func(c usageCase) bool { return c.id == "big-b" })
	checkTop(t, e.scrapeUsage(), cs, 5)
	if err := e.srv.SweepUsageNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkTop(t, e.scrapeUsage(), cs, 5)

	// A tenant the sweep does not find in the catalog (offboarded by
	// another instance, say) is dropped at the end of the sweep.
	e.srv.ObserveUsage(tenant.MustParse("ghost"), 1, 1<<30)
	if got := e.scrapeUsage(); got.bytes["ghost"] != 1<<30 || got.tracked != int64(len(cs)+1) {
		t.Fatalf("ghost not tracked: %+v", got)
	}
	if err := e.srv.SweepUsageNow(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkTop(t, e.scrapeUsage(), cs, 5)
}

// TestUsageGaugesFedByRequests: with the sweeper off, committed writes
// and deletes, GET /v1/usage and the admin tenant view keep a tenant's
// gauges current; a refused write changes nothing, and one tenant's
// requests never touch another's entry.
func TestUsageGaugesFedByRequests(t *testing.T) {
	e := newEnvIn(t, t.TempDir(), server.Options{UsageTopTenants: 5, UsageSweepInterval: -1})
	acme := e.tenantWithKey("acme", "pooled")
	globex := e.tenantWithKey("globex", "database")
	if got := e.scrapeUsage(); got.tracked != 0 {
		t.Fatalf("tracked before any request: %+v", got)
	}

	want(t, e.req("PUT", "/v1/collections/c/records/a", acme, `{"v":1}`), 201, "")
	want(t, e.req("PUT", "/v1/collections/c/records/b", acme, `{"v":22}`), 201, "")
	got := e.scrapeUsage()
	if got.tracked != 1 || got.records["acme"] != 2 || got.bytes["acme"] != int64(len(`{"v":1}`)+len(`{"v":22}`)) {
		t.Fatalf("after acme's writes: %+v", got)
	}
	if _, ok := got.records["globex"]; ok {
		t.Fatalf("acme's writes put globex in the gauges: %+v", got)
	}

	// An update that grows a record, then a delete.
	want(t, e.req("PUT", "/v1/collections/c/records/b", acme, `{"v":333}`), 200, "")
	want(t, e.req("DELETE", "/v1/collections/c/records/a", acme, nil), 204, "")
	if got := e.scrapeUsage(); got.records["acme"] != 1 || got.bytes["acme"] != int64(len(`{"v":333}`)) {
		t.Fatalf("after the update and the delete: %+v", got)
	}

	// A write refused for its quota leaves the gauges as they were.
	want(t, e.req("PATCH", "/v1/admin/tenants/acme", e.op, `{"limits":{"max_records":1}}`), 200, "")
	want(t, e.req("PUT", "/v1/collections/c/records/z", acme, `{"v":4444}`), 403, "quota_exceeded")
	if got := e.scrapeUsage(); got.records["acme"] != 1 || got.bytes["acme"] != int64(len(`{"v":333}`)) {
		t.Fatalf("after a refused write: %+v", got)
	}

	// A read refreshes the entry too.
	want(t, e.req("GET", "/v1/usage", acme, nil), 200, "")
	if got := e.scrapeUsage(); got.tracked != 1 || got.records["acme"] != 1 {
		t.Fatalf("after acme's GET /v1/usage: %+v", got)
	}

	// The control plane's show reads usage too.
	want(t, e.req("GET", "/v1/admin/tenants/globex", e.op, nil), 200, "")
	if got := e.scrapeUsage(); got.tracked != 2 || got.records["globex"] != 0 || got.records["acme"] != 1 {
		t.Fatalf("after the admin show: %+v", got)
	}
	want(t, e.req("PUT", "/v1/collections/c/records/a", globex, `{"v":"globex"}`), 201, "")
	if got := e.scrapeUsage(); got.records["globex"] != 1 || got.bytes["globex"] != int64(len(`{"v":"globex"}`)) ||
		got.records["acme"] != 1 || got.bytes["acme"] != int64(len(`{"v":333}`)) {
		t.Fatalf("after globex's write: %+v", got)
	}
}

// TestUsageSweeperRunsAndStops: the background sweeper fills the gauges by
// itself, and Close stops it and waits for it.
func TestUsageSweeperRunsAndStops(t *testing.T) {
	e := newEnvIn(t, t.TempDir(), server.Options{UsageSweepInterval: 20 * time.Millisecond})
	tok := e.tenantWithKey("acme", "pooled")
	want(t, e.req("PUT", "/v1/collections/c/records/a", tok, `{"v":1}`), 201, "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := e.scrapeUsage()
		if got.records["acme"] == 1 && got.bytes["acme"] == int64(len(`{"v":1}`)) && got.hasSweep {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sweeper did not report acme: %+v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if e.srv.UsageSweeperStopped() {
		t.Fatal("the sweeper stopped by itself")
	}
	e.close()
	if !e.srv.UsageSweeperStopped() {
		t.Fatal("Close returned before the sweeper did")
	}
}

// TestUsageSweeperStopsWithServe: Serve's shutdown stops the sweeper
// before Close is called; a disabled sweeper never starts.
func TestUsageSweeperStopsWithServe(t *testing.T) {
	s, err := server.Open(context.Background(), server.Options{DataDir: t.TempDir(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	if s.UsageSweeperStopped() {
		t.Fatal("no sweeper running")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if !s.UsageSweeperStopped() {
		t.Fatal("Serve's shutdown left the sweeper running")
	}

	off, err := server.Open(context.Background(), server.Options{DataDir: t.TempDir(), Logger: discardLogger(), UsageSweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	if !off.UsageSweeperStopped() {
		t.Fatal("a sweeper runs although UsageSweepInterval < 0")
	}
}

func discardLogger() *slog.Logger { return telemetry.NewLogger(io.Discard, slog.LevelInfo) }
