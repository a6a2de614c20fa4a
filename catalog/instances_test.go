package catalog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// within polls cond until it holds or one second (the bound the issue sets
// for cross-instance enforcement) has passed, and returns how long it took.
func within(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(time.Second)
	for {
		if cond() {
			d := time.Since(start)
			t.Logf("%s: seen by the other instance after %v", what, d.Round(time.Microsecond))
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not enforced by the other instance within 1s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestChangesReachOtherInstances runs two Catalogs on one PostgreSQL
// database. The second caches for an hour, so only the first one's
// notifications can make it see the changes.
func TestChangesReachOtherInstances(t *testing.T) {
	ctx := context.Background()
	f := newPostgres(t)
	a := f.open(t)
	b := f.open(t, catalog.Options{CacheTTL: time.Hour})
	s := newStorage()
	id := tenant.MustParse("acme")
	var worst time.Duration
	track := func(d time.Duration) { worst = max(worst, d) }

	// B caches "no such tenant"; A's create must replace that.
	if _, err := b.Placement(ctx, id); !errors.Is(err, store.ErrUnknownTenant) {
		t.Fatalf("placement before create: %v", err)
	}
	create(t, a, s, "acme")
	track(within(t, "create", func() bool { _, err := b.Placement(ctx, id); return err == nil }))

	_, tok, err := a.CreateKey(ctx, id, catalog.RoleWriter, "")
	if err != nil {
		t.Fatal(err)
	}
	_, tok2, err := a.CreateKey(ctx, id, catalog.RoleReader, "")
	if err != nil {
		t.Fatal(err)
	}
	k, _, _ := catalog.ParseToken(tok)
	if _, err := b.Authenticate(ctx, tok); err != nil { // warm B's cache
		t.Fatal(err)
	}

	if _, err := a.Suspend(ctx, id); err != nil {
		t.Fatal(err)
	}
	track(within(t, "suspend", func() bool { _, err := b.Authenticate(ctx, tok); return errors.Is(err, catalog.ErrSuspended) }))
	if _, err := a.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	track(within(t, "resume", func() bool { _, err := b.Authenticate(ctx, tok); return err == nil }))

	if err := a.RevokeKey(ctx, id, k); err != nil {
		t.Fatal(err)
	}
	track(within(t, "revoke", func() bool { _, err := b.Authenticate(ctx, tok); return errors.Is(err, catalog.ErrUnauthenticated) }))
	if _, err := b.Authenticate(ctx, tok2); err != nil {
		t.Fatalf("revoking one key broke another: %v", err)
	}

	t.Run("after the listener's connection is killed, changes still reach B", func(t *testing.T) {
		killListeners(t, f.url)
		if _, err := a.Suspend(ctx, id); err != nil {
			t.Fatal(err)
		}
		track(within(t, "suspend after reconnect", func() bool {
			_, err := b.Authenticate(ctx, tok2)
			return errors.Is(err, catalog.ErrSuspended)
		}))
		if _, err := a.Resume(ctx, id); err != nil {
			t.Fatal(err)
		}
		track(within(t, "resume after reconnect", func() bool { _, err := b.Authenticate(ctx, tok2); return err == nil }))
	})

	if err := a.Offboard(ctx, id, s.drop); err != nil {
		t.Fatal(err)
	}
	track(within(t, "delete", func() bool {
		_, perr := b.Placement(ctx, id)
		_, aerr := b.Authenticate(ctx, tok2)
		return errors.Is(perr, store.ErrUnknownTenant) && errors.Is(aerr, catalog.ErrUnauthenticated)
	}))
	t.Logf("worst cross-instance latency: %v", worst)
}

// killListeners terminates every LISTEN connection on the database, as a
// network failure or a server restart would.
func killListeners(t *testing.T, dbURL string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("found no listener connection to kill: the test would prove nothing")
	}
}

func TestMigrationUnits(t *testing.T) { forEachEngine(t, testMigrationUnits) }

func testMigrationUnits(t *testing.T, f *fixture) {
	ctx := context.Background()
	c := f.open(t)
	s := newStorage()
	create(t, c, s, "alpha") // pooled on "local"
	for _, tc := range []struct{ id, mode, shard string }{
		{"bravo", "database", "eu"}, {"charlie", "schema", "local"}, {"delta", "schema", "eu"},
	} {
		p := store.Placement{Mode: store.Mode(tc.mode), Shard: tc.shard}
		if _, err := c.CreateTenant(ctx, catalog.Tenant{ID: tenant.MustParse(tc.id), Placement: p}, s.provision); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Suspend(ctx, tenant.MustParse("delta")); err != nil {
		t.Fatal(err)
	}
	units, err := c.MigrationUnits(ctx, "eu", "us")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range units {
		got = append(got, u.String())
	}
	want := "eu/pooled local/pooled us/pooled eu/database/bravo eu/schema/delta local/schema/charlie"
	if g := join(got); g != want {
		t.Fatalf("units = %s\nwant    %s", g, want)
	}
}

func join(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out
}
