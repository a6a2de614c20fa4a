package postgres

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// trips counts the round trips a serving connection makes: batches and
// single statements.
type trips struct{ n atomic.Int64 }

func (c *trips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *trips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *trips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *trips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *trips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// Appending an event costs a write no round trip: a Put, a Create and a
// Delete take as many with the outbox on as with it off (Config.NoEvents),
// on the same backend; the events are there after.
func TestEventsAddNoRoundTrip(t *testing.T) {
	w := newWorld(t, store.Pooled, 2)
	ctx := w.e.Tenant(t, "acme")
	// The serving pool again, counting (its statements prepared as Open's are).
	var c trips
	cfg := w.b.serveDB.Copy()
	cfg.ConnConfig.Tracer = &c
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	old := w.b.serve
	w.b.serve = pool
	t.Cleanup(func() { w.b.serve = old })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	quiet, err := store.NewRouter(store.Config{Placements: w.e.Placements, Backends: map[string]store.Backend{storetest.Shard: w.b},
		CursorKey: key, Quotas: w.e.Quotas, NoEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	cost := func(r *store.Router, id string) [3]int64 {
		t.Helper()
		var out [3]int64
		for i, fn := range []func(tx *store.Tx) error{
			func(tx *store.Tx) error {
				_, _, err := tx.Put(ctx, "docs", id, []byte(`{"v":1}`), store.IfMatch{})
				return err
			},
			func(tx *store.Tx) error {
				_, _, err := tx.Put(ctx, "docs", id, []byte(`{"v":2}`), store.IfMatch{})
				return err
			},
			func(tx *store.Tx) error { return tx.Delete(ctx, "docs", id, store.IfMatch{}) },
		} {
			before := c.n.Load()
			if err := r.Tx(ctx, fn); err != nil {
				t.Fatal(err)
			}
			out[i] = c.n.Load() - before
		}
		return out
	}
	cost(w.e.Router, "warm") // connections made, usage row there
	cost(quiet, "warm")
	with, without := cost(w.e.Router, "a"), cost(quiet, "b")
	if with != without {
		t.Fatalf("round trips of create, update, delete: %v with events, %v without", with, without)
	}
	evs, head := readEvents(t, w.e.Router, ctx, 0)
	if head != 6 || len(evs) != 6 || evs[3].ID != "a" || evs[5].Op != store.OpDelete {
		t.Fatalf("events = %q head %d; want six, from the router with events only", brief(evs), head)
	}
}

// Units provisioned before the outbox existed get its tables on their first
// use by a new process (schema, database) or when the backend opens
// (pooled), secured like the others; writes then append events from 1.
func TestUpgradeUnitsWithoutOutbox(t *testing.T) {
	env := pgtest.New(t)
	ctx := context.Background()
	units := map[string]store.Mode{"s-acme": store.Schema, "d-acme": store.Database, "p-acme": store.Pooled}
	old := open(t, env, Options{MaxConns: 2})
	oe := storetest.NewEnv(t, old, store.Schema)
	for name, mode := range units {
		id := tenant.MustParse(name)
		p := store.Placement{Mode: mode, Shard: storetest.Shard}
		if err := oe.Router.Provision(ctx, id, p); err != nil {
			t.Fatal(err)
		}
		oe.Placements.Set(id, p)
	}
	drop := `DROP TABLE %[1]s.tenant_events; DROP TABLE %[1]s.tenant_event_offsets`
	for _, s := range []string{"bulkhead", tenant.MustParse("s-acme").StorageName()} {
		if _, err := old.OperatorPool().Exec(ctx, fmt.Sprintf(drop, ident(s))); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(env.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = env.Prefix + tenant.MustParse("d-acme").StorageName()
	adminDB, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer adminDB.Close(ctx)
	if _, err := adminDB.Exec(ctx, fmt.Sprintf(drop, "bulkhead")); err != nil {
		t.Fatal(err)
	}

	b := open(t, env, Options{MaxConns: 2})
	e := storetest.NewEnv(t, b, store.Schema)
	for name, mode := range units {
		id := tenant.MustParse(name)
		e.Placements.Set(id, store.Placement{Mode: mode, Shard: storetest.Shard})
		tctx := tenant.WithID(ctx, id)
		put(t, e.Router, tctx, "docs", "a", `{}`)
		if evs, head := readEvents(t, e.Router, tctx, 0); len(evs) != 1 || head != 1 || evs[0].Tenant != id {
			t.Fatalf("%s after the upgrade: events %q head %d", name, brief(evs), head)
		}
	}
	sup, err := pgx.Connect(ctx, env.SuperURL)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close(ctx)
	for _, rel := range []string{"bulkhead.tenant_events", "bulkhead.tenant_event_offsets", "t_s_acme.tenant_events", "t_s_acme.tenant_event_offsets"} {
		var force, granted bool
		var policies int
		if err := sup.QueryRow(ctx, `SELECT relforcerowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = $1::regclass),
			has_table_privilege($2, $1::regclass, 'SELECT, INSERT, UPDATE, DELETE')
			FROM pg_class WHERE oid = $1::regclass`, rel, env.Serving).Scan(&force, &policies, &granted); err != nil {
			t.Fatal(err)
		}
		if !force || policies != 2 || !granted {
			t.Fatalf("%s after the upgrade: force %v, %d policies, serving role granted %v", rel, force, policies, granted)
		}
	}
}
