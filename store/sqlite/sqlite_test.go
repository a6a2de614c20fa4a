package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func open(t testing.TB, dir string, opts Options) *Backend {
	t.Helper()
	b, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	for _, mode := range []store.Mode{store.Pooled, store.Database} {
		t.Run(string(mode), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Backend { return open(t, t.TempDir(), Options{}) }, mode)
		})
	}
}

// TestConformanceSealed: the same suite with record data encrypted with
// per-tenant keys, and the attacks on sealed records.
func TestConformanceSealed(t *testing.T) {
	for _, mode := range []store.Mode{store.Pooled, store.Database} {
		t.Run(string(mode), func(t *testing.T) {
			storetest.RunSealed(t, func(t *testing.T) store.Backend { return open(t, t.TempDir(), Options{}) }, mode)
		})
	}
}

// A small LRU bound makes the suite open and close tenant files constantly.
func TestConformanceDatabaseWithTinyLRU(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	storetest.Run(t, func(t *testing.T) store.Backend {
		return open(t, t.TempDir(), Options{MaxOpenDatabases: 1})
	}, store.Database)
}

func TestSchemaModeIsRefused(t *testing.T) {
	b := open(t, t.TempDir(), Options{})
	defer b.Close()
	err := b.Supports(store.Schema)
	if !errors.Is(err, store.ErrIsolationUnsupported) || !strings.Contains(err.Error(), "PostgreSQL") ||
		!strings.Contains(err.Error(), "use pooled or database") {
		t.Fatalf("Supports(schema) = %v, want ErrIsolationUnsupported saying it needs PostgreSQL", err)
	}
	for _, m := range []store.Mode{store.Pooled, store.Database} {
		if err := b.Supports(m); err != nil {
			t.Fatalf("Supports(%s) = %v", m, err)
		}
	}
	if err := b.Supports("bogus"); !errors.Is(err, store.ErrIsolationUnsupported) {
		t.Fatalf("Supports(bogus) = %v", err)
	}
	id := tenant.MustParse("acme")
	if err := b.Provision(context.Background(), id, store.Schema); !errors.Is(err, store.ErrIsolationUnsupported) {
		t.Fatalf("Provision(schema) = %v", err)
	}
	if _, err := b.Begin(context.Background(), id, store.Schema, true); !errors.Is(err, store.ErrIsolationUnsupported) {
		t.Fatalf("Begin(schema) = %v", err)
	}
	e := storetest.NewEnv(t, open(t, t.TempDir(), Options{}), store.Pooled)
	if err := e.Router.Provision(context.Background(), id, store.Placement{Mode: store.Schema, Shard: storetest.Shard}); !errors.Is(err, store.ErrIsolationUnsupported) {
		t.Fatalf("Router.Provision(schema) = %v", err)
	}
}

func TestFilesLandUnderTenantsDirWithDerivedNames(t *testing.T) {
	dir := t.TempDir()
	e := storetest.NewEnv(t, open(t, dir, Options{}), store.Database)
	ctx := e.Tenant(t, "acme-corp-2")
	put(t, e, ctx, "c", "r", `{}`)
	if _, err := os.Stat(filepath.Join(dir, "tenants", "t_acme_corp_2.db")); err != nil {
		t.Fatalf("tenant database file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pooled.db")); err != nil {
		t.Fatalf("pooled database file: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "tenants"))
	for _, en := range entries {
		if !strings.HasPrefix(en.Name(), "t_acme_corp_2.db") {
			t.Fatalf("unexpected file %s in tenants dir", en.Name())
		}
	}
	pooled := storetest.NewEnv(t, open(t, t.TempDir(), Options{}), store.Pooled)
	pooled.Tenant(t, "acme-corp-2")
	if entries, _ := os.ReadDir(filepath.Join(pooled.Backend.(*Backend).Dir(), "tenants")); len(entries) != 0 {
		t.Fatalf("pooled tenant made files: %v", entries)
	}
}

func TestDropRemovesTheFile(t *testing.T) {
	dir := t.TempDir()
	e := storetest.NewEnv(t, open(t, dir, Options{}), store.Database)
	ctx := e.Tenant(t, "acme")
	put(t, e, ctx, "c", "r", `{}`)
	e.Offboard(t, "acme")
	entries, _ := os.ReadDir(filepath.Join(dir, "tenants"))
	if len(entries) != 0 {
		t.Fatalf("files left after drop: %v", entries)
	}
	if _, err := e.Backend.Begin(ctx, tenant.MustParse("acme"), store.Database, false); !errors.Is(err, store.ErrUnknownTenant) {
		t.Fatalf("Begin on a dropped tenant database = %v, want ErrUnknownTenant (no file is recreated)", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tenants")); len(entries) != 0 {
		t.Fatalf("Begin recreated files: %v", entries)
	}
}

func TestDropWaitsForTransactionsInFlight(t *testing.T) {
	b := open(t, t.TempDir(), Options{})
	defer b.Close()
	ctx := context.Background()
	id := tenant.MustParse("acme")
	if err := b.Provision(ctx, id, store.Database); err != nil {
		t.Fatal(err)
	}
	tx, err := b.Begin(ctx, id, store.Database, true)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := b.Drop(short, id, store.Database); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drop with a transaction in flight = %v, want it to wait until ctx ends", err)
	}
	// The failed drop left the tenant usable.
	tx2, err := b.Begin(ctx, id, store.Database, false)
	if err != nil {
		t.Fatalf("Begin after a cancelled drop: %v", err)
	}
	_ = tx2.Rollback()

	done := make(chan error, 1)
	go func() { done <- b.Drop(ctx, id, store.Database) }()
	for { // wait until Drop is waiting, then new transactions are refused
		b.mu.Lock()
		dropping := b.dbs[id] != nil && b.dbs[id].dropping
		b.mu.Unlock()
		if dropping {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := b.Begin(ctx, id, store.Database, false); !errors.Is(err, store.ErrUnknownTenant) {
		t.Fatalf("Begin while dropping = %v, want ErrUnknownTenant", err)
	}
	if err := tx.Insert(ctx, store.Record{ID: "r", Collection: "c", Data: []byte(`{}`), Version: 1}); err != nil {
		t.Fatalf("transaction in flight during drop: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Drop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.Dir(), "tenants", "t_acme.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file after drop: %v", err)
	}
}

func TestSymlinkedTenantFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir, Options{})
	defer b.Close()
	outside := filepath.Join(t.TempDir(), "victim.db")
	if err := os.WriteFile(outside, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "tenants", "t_evil.db")); err != nil {
		t.Fatal(err)
	}
	id := tenant.MustParse("evil")
	if err := b.Provision(context.Background(), id, store.Database); err == nil {
		t.Fatal("Provision through a planted symlink succeeded")
	}
	if _, err := b.Begin(context.Background(), id, store.Database, true); err == nil {
		t.Fatal("Begin through a planted symlink succeeded")
	}
	if fi, _ := os.Stat(outside); fi.Size() != 0 {
		t.Fatal("the file outside the data directory was written")
	}
}

func TestPragmasAreSet(t *testing.T) {
	b := open(t, t.TempDir(), Options{BusyTimeout: 1234 * time.Millisecond})
	defer b.Close()
	id := tenant.MustParse("acme")
	if err := b.Provision(context.Background(), id, store.Database); err != nil {
		t.Fatal(err)
	}
	h, err := b.acquire(id)
	if err != nil {
		t.Fatal(err)
	}
	defer b.release(h)
	for name, hd := range map[string]*handle{"pooled": b.pooled, "tenant": h} {
		for _, c := range []struct {
			pool   string
			pragma string
			want   string
		}{
			{"write", "journal_mode", "wal"},
			{"write", "synchronous", "2"}, // FULL
			{"write", "foreign_keys", "1"},
			{"write", "busy_timeout", "1234"},
			{"write", "query_only", "0"},
			{"read", "journal_mode", "wal"},
			{"read", "synchronous", "2"},
			{"read", "busy_timeout", "1234"},
			{"read", "query_only", "1"},
			{"read", "page_size", "8192"}, // a new file: a sealed 1 KiB record fits in its page
		} {
			db := hd.write
			if c.pool == "read" {
				db = hd.read
			}
			var got string
			if err := db.QueryRow("PRAGMA " + c.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("%s %s pool: PRAGMA %s = %s, want %s", name, c.pool, c.pragma, got, c.want)
			}
		}
		if n := hd.write.Stats().MaxOpenConnections; n != 1 {
			t.Errorf("%s write pool allows %d connections, want 1", name, n)
		}
	}
}

func TestDurableAcrossCloseAndOpen(t *testing.T) {
	dir := t.TempDir()
	places := map[string]store.Mode{"pooled-a": store.Pooled, "pooled-b": store.Pooled, "db-a": store.Database}
	e := storetest.NewEnv(t, open(t, dir, Options{}), store.Pooled)
	want := map[string]store.Record{}
	for name, mode := range places {
		e.Mode = mode
		ctx := e.Tenant(t, name)
		for i := 0; i < 3; i++ {
			want[name] = put(t, e, ctx, "c", "r", fmt.Sprintf(`{"owner":%q,"i":%d}`, name, i))
		}
	}
	if err := e.Router.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := storetest.NewEnv(t, open(t, dir, Options{}), store.Pooled)
	for name, mode := range places {
		e2.Placements.Set(tenant.MustParse(name), store.Placement{Mode: mode, Shard: storetest.Shard})
	}
	for name := range places {
		ctx := tenant.WithID(context.Background(), tenant.MustParse(name))
		err := e2.Router.ReadTx(ctx, func(tx *store.Tx) error {
			got, err := tx.Get(ctx, "c", "r")
			if err != nil {
				return err
			}
			w := want[name]
			if string(got.Data) != string(w.Data) || got.Version != 3 || !got.CreatedAt.Equal(w.CreatedAt) || !got.UpdatedAt.Equal(w.UpdatedAt) {
				t.Errorf("%s after reopen: %+v (%s), want %+v (%s)", name, got, got.Data, w, w.Data)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s after reopen: %v", name, err)
		}
	}
}

func TestClosedBackendRefusesUse(t *testing.T) {
	b := open(t, t.TempDir(), Options{})
	id := tenant.MustParse("acme")
	if err := b.Provision(context.Background(), id, store.Database); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, mode := range []store.Mode{store.Pooled, store.Database} {
		if _, err := b.Begin(context.Background(), id, mode, false); err == nil {
			t.Fatalf("Begin(%s) after Close succeeded", mode)
		}
	}
	if err := b.Ping(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping after Close = %v", err)
	}
}

func put(t testing.TB, e *storetest.Env, ctx context.Context, coll, id, data string) store.Record {
	t.Helper()
	var rec store.Record
	err := e.Router.Tx(ctx, func(tx *store.Tx) error {
		var err error
		rec, _, err = tx.Put(ctx, coll, id, []byte(data), store.IfMatch{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestFilesAreOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	e := storetest.NewEnv(t, open(t, dir, Options{}), store.Database)
	ctx := e.Tenant(t, "acme")
	put(t, e, ctx, "c", "r", `{}`)
	pooled := storetest.NewEnv(t, e.Backend, store.Pooled)
	pctx := pooled.Tenant(t, "bravo")
	put(t, pooled, pctx, "c", "r", `{}`)
	for _, name := range []string{"pooled.db", "pooled.db-wal", "tenants/t_acme.db", "tenants/t_acme.db-wal", "tenants"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group and others", name, perm)
		}
	}
}

// TestUsageTableAddedToOldFiles: a tenant file made before usage was kept
// (no tenant_usage table) gets the table and a usage counted from its
// records on its first write.
func TestUsageTableAddedToOldFiles(t *testing.T) {
	e := storetest.NewEnv(t, open(t, t.TempDir(), Options{}), store.Database)
	ctx := e.Tenant(t, "acme")
	b := e.Backend.(*Backend)
	put := func(id string) {
		t.Helper()
		if err := e.Router.Tx(ctx, func(tx *store.Tx) error {
			_, _, err := tx.Put(ctx, "c", id, []byte(`{"a":1}`), store.IfMatch{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	put("a")
	h, err := b.acquire(tenant.MustParse("acme"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.write.Exec(`DROP TABLE tenant_usage`)
	b.release(h)
	if err != nil {
		t.Fatal(err)
	}
	var u store.Usage
	read := func() {
		t.Helper()
		if err := e.Router.ReadTx(ctx, func(tx *store.Tx) error { u, err = tx.Usage(ctx); return err }); err != nil {
			t.Fatal(err)
		}
	}
	read()
	if u != (store.Usage{Records: 1, Bytes: 7}) {
		t.Fatalf("usage without the table: %+v", u)
	}
	put("b")
	read()
	if u != (store.Usage{Records: 2, Bytes: 14}) {
		t.Fatalf("usage after the first write: %+v", u)
	}
}
