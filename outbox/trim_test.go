package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/outbox"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// trimmer returns a Trimmer over the fixture whose transactions are
// recorded (the tenant of each, in order) in txs.
func (f *fixture) trimmer(t *testing.T, o outbox.TrimOptions, txs *[]string) *outbox.Trimmer {
	t.Helper()
	if f.trimMetrics == nil {
		m, err := outbox.NewTrimMetrics(f.reg, func(id string) string { return id })
		if err != nil {
			t.Fatal(err)
		}
		f.trimMetrics = m
	}
	var mu sync.Mutex
	o.Tenants, o.Now, o.Metrics = f.tenants(), f.now, f.trimMetrics
	o.Store = runnerFunc(func(ctx context.Context, fn func(*store.Tx) error) error {
		id, err := tenant.FromContext(ctx)
		if err != nil {
			return err
		}
		if txs != nil {
			mu.Lock()
			*txs = append(*txs, id.String())
			mu.Unlock()
		}
		return f.router.Tx(ctx, fn)
	})
	tr, err := outbox.NewTrimmer(o)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

type runnerFunc func(ctx context.Context, fn func(*store.Tx) error) error

func (r runnerFunc) Tx(ctx context.Context, fn func(*store.Tx) error) error { return r(ctx, fn) }

// TestTrimByAgeAndCount: events past the maximum age or beyond the newest
// maximum count go, oldest first; each tenant keeps its own newest ones;
// a reader behind the trim gets ErrEventsExpired; the metrics count it.
func TestTrimByAgeAndCount(t *testing.T) {
	engines(t, func(t *testing.T, f *fixture) {
		acme, globex := f.tenant(t, "acme"), f.tenant(t, "globex")
		for i := range 6 {
			f.put(t, acme, "logs", fmt.Sprintf("a%d", i), `{}`)
			f.advance(time.Minute)
		}
		f.put(t, globex, "logs", "g0", `{}`)
		f.advance(time.Hour) // all of them are an hour old now
		f.put(t, globex, "logs", "g1", `{}`)

		// By count only: acme keeps its newest 4, globex its 2.
		tr := f.trimmer(t, outbox.TrimOptions{MaxCount: 4}, nil)
		got, err := tr.Trim(context.Background())
		if err != nil || fmt.Sprint(got) != "[{acme 2 <nil>} {globex 0 <nil>}]" {
			t.Fatalf("trim by count = %v, %v", got, err)
		}
		if s, _ := f.seqs(t, acme, 2); fmt.Sprint(s) != "[3 4 5 6]" {
			t.Fatalf("acme's events after a trim by count: %v", s)
		}
		if _, err := f.seqs(t, acme, 0); !errors.Is(err, store.ErrEventsExpired) {
			t.Fatalf("a reader behind the trim: %v", err)
		}
		// By age: everything older than 30 minutes, whatever the count.
		tr = f.trimmer(t, outbox.TrimOptions{MaxAge: 30 * time.Minute, MaxCount: 1000}, nil)
		if got, err = tr.Trim(context.Background()); err != nil || fmt.Sprint(got) != "[{acme 4 <nil>} {globex 1 <nil>}]" {
			t.Fatalf("trim by age = %v, %v", got, err)
		}
		if s, err := f.seqs(t, globex, 1); err != nil || fmt.Sprint(s) != "[2]" {
			t.Fatalf("globex keeps its new event: %v %v", s, err)
		}
		if s, err := f.seqs(t, acme, 6); err != nil || len(s) != 0 {
			t.Fatalf("acme at its head after trimming all: %v %v", s, err)
		}
		// The counter goes on after a tenant's outbox was emptied.
		f.put(t, acme, "logs", "a6", `{}`)
		if s, _ := f.seqs(t, acme, 6); fmt.Sprint(s) != "[7]" {
			t.Fatalf("acme's next event: %v", s)
		}
		if n := counter(t, f.reg, "bulkhead_outbox_trimmed_events_total", "acme"); n != 6 {
			t.Fatalf("trimmed events metric for acme = %v, want 6", n)
		}
		if n := counter(t, f.reg, "bulkhead_outbox_trim_runs_total", "ok"); n != 2 {
			t.Fatalf("runs metric = %v", n)
		}
	})
}

// TestTrimIsRoundRobinAndBounded: a tenant with many events to trim gets
// one bounded transaction per round like the others, a run stops at
// MaxPerRun per tenant, and the next run goes on starting one tenant
// further along.
func TestTrimIsRoundRobinAndBounded(t *testing.T) {
	engines(t, func(t *testing.T, f *fixture) {
		big, small := f.tenant(t, "big"), f.tenant(t, "small")
		for i := range 9 {
			f.put(t, big, "logs", fmt.Sprintf("b%d", i), `{}`)
		}
		f.put(t, small, "logs", "s0", `{}`)
		f.put(t, small, "logs", "s1", `{}`)
		var txs []string
		tr := f.trimmer(t, outbox.TrimOptions{MaxCount: 1, BatchSize: 2, MaxPerRun: 6}, &txs)
		got, err := tr.Trim(context.Background())
		if err != nil || fmt.Sprint(got) != "[{big 6 <nil>} {small 1 <nil>}]" {
			t.Fatalf("first run = %v, %v", got, err)
		}
		if s := strings.Join(txs, ","); s != "big,small,big,big" {
			t.Fatalf("transactions of the first run: %s, want big,small,big,big", s)
		}
		txs = nil
		if got, err = tr.Trim(context.Background()); err != nil || fmt.Sprint(got) != "[{big 2 <nil>} {small 0 <nil>}]" {
			t.Fatalf("second run = %v, %v", got, err)
		}
		if s := strings.Join(txs, ","); s != "small,big,big" {
			t.Fatalf("transactions of the second run: %s, want small first", s)
		}
		if s, _ := f.seqs(t, big, 8); fmt.Sprint(s) != "[9]" {
			t.Fatalf("big keeps %v", s)
		}
	})
}

// TestTrimReentersEachTenant: the trimmer's transactions carry exactly
// the tenant they trim, and one tenant's failure does not stop the others.
func TestTrimReentersEachTenant(t *testing.T) {
	engines(t, func(t *testing.T, f *fixture) {
		acme, globex := f.tenant(t, "acme"), f.tenant(t, "globex")
		f.put(t, acme, "logs", "a", `{}`)
		f.put(t, acme, "logs", "b", `{}`)
		f.put(t, globex, "logs", "a", `{}`)
		f.put(t, globex, "logs", "b", `{}`)
		// A tenant listed but unknown to the router (offboarded meanwhile)
		// is skipped, not an error.
		f.ids = append(f.ids, tenant.MustParse("gone"))
		tr := f.trimmer(t, outbox.TrimOptions{MaxCount: 1}, nil)
		got, err := tr.Trim(context.Background())
		if err != nil || fmt.Sprint(got) != "[{acme 1 <nil>} {globex 1 <nil>} {gone 0 <nil>}]" {
			t.Fatalf("Trim = %v, %v", got, err)
		}
		// A context the store refuses (another tenant in it) fails that
		// tenant only.
		bad := outbox.TenantsFunc(func(context.Context) ([]tenant.ID, error) {
			return []tenant.ID{tenant.MustParse("acme"), tenant.MustParse("globex")}, nil
		})
		f.put(t, acme, "logs", "c", `{}`)
		f.put(t, globex, "logs", "c", `{}`)
		tr, err = outbox.NewTrimmer(outbox.TrimOptions{Tenants: bad, MaxCount: 1, Store: runnerFunc(func(ctx context.Context, fn func(*store.Tx) error) error {
			if id, _ := tenant.FromContext(ctx); id.String() == "acme" {
				return f.router.Tx(ctx, func(tx *store.Tx) error { return fn(tx) }) // acme's own: fine
			}
			return f.router.Tx(acme, fn) // globex's trim in acme's transaction: refused
		})})
		if err != nil {
			t.Fatal(err)
		}
		got, err = tr.Trim(context.Background())
		if err == nil || got[0].Events != 1 || !errors.Is(got[1].Err, store.ErrTenantMismatch) {
			t.Fatalf("Trim with a foreign transaction = %v, %v", got, err)
		}
		if s, _ := f.seqs(t, globex, 2); fmt.Sprint(s) != "[3]" {
			t.Fatalf("globex's events after a refused trim: %v", s)
		}
	})
}

func TestNewTrimmerRefusesBadOptions(t *testing.T) {
	ts := outbox.TenantsFunc(func(context.Context) ([]tenant.ID, error) { return nil, nil })
	st := runnerFunc(func(context.Context, func(*store.Tx) error) error { return nil })
	for name, o := range map[string]outbox.TrimOptions{
		"no tenants":     {Store: st},
		"no store":       {Tenants: ts},
		"negative age":   {Tenants: ts, Store: st, MaxAge: -time.Hour},
		"negative count": {Tenants: ts, Store: st, MaxCount: -1},
		"negative batch": {Tenants: ts, Store: st, BatchSize: -1},
	} {
		if _, err := outbox.NewTrimmer(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
