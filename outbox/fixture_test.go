package outbox_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/outbox"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

// fixture is a real store (SQLite, or PostgreSQL when
// BULKHEAD_TEST_POSTGRES is set) with a clock moved by the test, and a
// Router over it whose EventsCommitted hook calls notify.
type fixture struct {
	env    *tenanttest.Env
	router *store.Router
	mode   store.Mode
	clock  atomic.Int64
	reg    *prometheus.Registry
	ids    []tenant.ID // the tenants made, in order
	notify atomic.Pointer[func(tenant.ID)]

	trimMetrics *outbox.TrimMetrics
}

func (f *fixture) now() time.Time { return time.Unix(0, f.clock.Load()).UTC() }

func (f *fixture) advance(d time.Duration) { f.clock.Add(int64(d)) }

// engines runs fn on SQLite and on PostgreSQL, in every mode each hosts.
// A backend that keeps no outbox yet is skipped, saying so.
func engines(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			probe := newFixture(t, name, store.Pooled)
			ctx := probe.tenant(t, "probe")
			probe.put(t, ctx, "c", "r", `{}`)
			if err := probe.router.ReadTx(ctx, func(tx *store.Tx) error {
				_, _, err := tx.Events(ctx, 0, 1, nil)
				return err
			}); errors.Is(err, store.ErrEventsUnsupported) {
				t.Skipf("the %s backend keeps no outbox yet: %v", name, err)
			} else if err != nil {
				t.Fatal(err)
			}
			for _, mode := range probe.env.Modes() {
				t.Run(string(mode), func(t *testing.T) { fn(t, newFixture(t, name, mode)) })
			}
		})
	}
}

func newFixture(t *testing.T, engine string, mode store.Mode) *fixture {
	f := &fixture{mode: mode, reg: prometheus.NewRegistry()}
	f.clock.Store(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	opts := tenanttest.Options{Now: f.now}
	if engine == "postgres" {
		f.env = tenanttest.Postgres(t, opts)
	} else {
		f.env = tenanttest.New(t, opts)
	}
	f.router = f.newRouter(t)
	return f
}

// newRouter returns another Router over the fixture's backend, as a
// restarted process would make (the Env closes the backend).
func (f *fixture) newRouter(t *testing.T) *store.Router {
	t.Helper()
	r, err := store.NewRouter(store.Config{Placements: f.env, Backends: map[string]store.Backend{tenanttest.Shard: f.env.Backend},
		Now: f.now, CursorKey: []byte("outbox tests' cursor key, 32 bytes or more"), EventsCommitted: func(id tenant.ID) {
			if fn := f.notify.Load(); fn != nil {
				(*fn)(id)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) tenant(t *testing.T, name string) context.Context {
	t.Helper()
	ctx := f.env.Tenant(t, name, f.mode)
	f.ids = append(f.ids, tenant.MustParse(name))
	return ctx
}

// tenants lists the tenants made so far, in order.
func (f *fixture) tenants() outbox.Tenants {
	return outbox.TenantsFunc(func(context.Context) ([]tenant.ID, error) {
		return append([]tenant.ID(nil), f.ids...), nil
	})
}

func (f *fixture) put(t *testing.T, ctx context.Context, coll, id, data string) store.Record {
	t.Helper()
	var rec store.Record
	if err := f.router.Tx(ctx, func(tx *store.Tx) error {
		var err error
		rec, _, err = tx.Put(ctx, coll, id, []byte(data), store.IfMatch{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return rec
}

// offset returns consumer's saved position for the tenant in ctx.
func (f *fixture) offset(t *testing.T, ctx context.Context, consumer string) int64 {
	t.Helper()
	var off int64
	if err := f.router.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		off, err = tx.EventOffset(ctx, consumer)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return off
}

// seqs returns the Seqs the tenant's outbox holds after position after.
func (f *fixture) seqs(t *testing.T, ctx context.Context, after int64) ([]int64, error) {
	t.Helper()
	var out []int64
	err := f.router.ReadTx(ctx, func(tx *store.Tx) error {
		evs, _, err := tx.Events(ctx, after, store.MaxEventPage, nil)
		for _, ev := range evs {
			out = append(out, ev.Seq)
		}
		return err
	})
	return out, err
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
			if len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
