package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/tenant"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
)

// open opens a Backend on a fresh pgtest database; it is closed when t ends
// (storetest's Env closes it too; Close is idempotent).
func open(t testing.TB, env pgtest.Env, opts Options) *Backend {
	t.Helper()
	if opts.MaxConns == 0 {
		opts.MaxConns = 4
	}
	if opts.DatabasePrefix == "" {
		opts.DatabasePrefix = env.Prefix
	}
	b, err := Open(context.Background(), Shard{Name: storetest.Shard, URL: env.ServeURL, AdminURL: env.AdminURL}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
		t.Run(string(mode), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Backend {
				return open(t, pgtest.New(t), Options{})
			}, mode)
		})
	}
}

// TestConformanceSealed: the same suite with record data encrypted with
// per-tenant keys, and the attacks on sealed records, in every mode.
func TestConformanceSealed(t *testing.T) {
	for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
		t.Run(string(mode), func(t *testing.T) {
			storetest.RunSealed(t, func(t *testing.T) store.Backend {
				return open(t, pgtest.New(t), Options{})
			}, mode)
		})
	}
}

// With room for one tenant database pool, a pool with a transaction in
// flight stays open (the bound is exceeded meanwhile) and idle ones are
// closed least recently used first.
func TestDatabasePoolsAreBoundedLRU(t *testing.T) {
	b := open(t, pgtest.New(t), Options{MaxOpenDatabases: 1, MaxConns: 2})
	e := storetest.NewEnv(t, b, store.Database)
	names := []string{"t-one", "t-two", "t-three"}
	ctxs := make([]context.Context, len(names))
	for i, n := range names {
		ctxs[i] = e.Tenant(t, n)
	}
	put := func(ctx context.Context, data string) {
		t.Helper()
		if err := e.Router.Tx(ctx, func(tx *store.Tx) error {
			_, _, err := tx.Put(ctx, "c", "r", []byte(data), store.IfMatch{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 3; round++ {
		for i, ctx := range ctxs {
			put(ctx, `{"owner":"`+names[i]+`"}`)
			if n := b.OpenDatabases(); n > 1 {
				t.Fatalf("%d tenant pools open, want at most 1", n)
			}
		}
	}
	held, err := e.Router.Begin(ctxs[0], store.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	put(ctxs[1], `{"owner":"t-two"}`) // evicts nothing in use
	if _, err := held.Get(ctxs[0], "c", "r"); err != nil {
		t.Fatalf("transaction whose pool was over the bound: %v", err)
	}
	if err := held.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := b.OpenDatabases(); n > 1 {
		t.Fatalf("%d tenant pools open after the transaction ended, want at most 1", n)
	}
	// Drop waits for nothing here and refuses nothing afterwards.
	e.Offboard(t, "t-one")
	if _, err := b.Begin(context.Background(), tenant.MustParse("t-one"), store.Database, false); !errors.Is(err, store.ErrUnknownTenant) {
		t.Fatalf("Begin on a dropped tenant database = %v, want ErrUnknownTenant", err)
	}
}

// Apply runs only what a unit lacks, records its version inside the unit,
// and secures the tables a migration adds.
func TestApplyIsIdempotentAndSecuresNewTables(t *testing.T) {
	env := pgtest.New(t)
	b := open(t, env, Options{MaxConns: 2, Migrations: teamMigrations[:1]})
	ctx := context.Background()
	e := storetest.NewEnv(t, b, store.Schema)
	e.Tenant(t, "acme")
	units := []migrate.Unit{
		{Shard: storetest.Shard, Mode: store.Pooled},
		{Shard: storetest.Shard, Mode: store.Schema, Tenant: tenant.MustParse("acme")},
	}
	for _, u := range units {
		for range 2 {
			v, err := b.Apply(ctx, u, teamMigrations)
			if err != nil || v != 2 {
				t.Fatalf("Apply(%s) = %d, %v; want 2", u, v, err)
			}
		}
		if v, err := b.Apply(ctx, u, nil); err != nil || v != 2 {
			t.Fatalf("Apply(%s) with no migrations = %d, %v; want the current version 2", u, v, err)
		}
	}
	sup, err := pgx.Connect(ctx, env.SuperURL)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close(ctx)
	for _, rel := range []string{"bulkhead.invoices", "t_acme.invoices"} {
		var force bool
		var policies int
		if err := sup.QueryRow(ctx, `SELECT relforcerowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = $1::regclass)
			FROM pg_class WHERE oid = $1::regclass`, rel).Scan(&force, &policies); err != nil {
			t.Fatal(err)
		}
		if !force || policies != 2 {
			t.Fatalf("%s after Apply: force %v, %d policies", rel, force, policies)
		}
	}
	_, err = b.Apply(ctx, migrate.Unit{Shard: "elsewhere", Mode: store.Pooled}, nil)
	if err == nil {
		t.Fatal("Apply on another shard's unit succeeded")
	}
	bad := []migrate.Migration{{Version: 3, Name: "broken", SQL: `CREATE TABLE nope (`}}
	if v, err := b.Apply(ctx, units[0], append(teamMigrations, bad...)); err == nil || v != 2 || !strings.Contains(err.Error(), "migration 3 (broken)") {
		t.Fatalf("Apply of a broken migration = %d, %v; want version 2 and an error naming it", v, err)
	}
}
