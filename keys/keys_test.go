package keys_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/bulkhead-dev/bulkhead/keys"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// fixture is a Manager over a SQLite key store and a keyring file in a
// temporary directory.
type fixture struct {
	dir   string
	ring  *keys.FileKeyring
	store *keys.SQLStore
	db    *sql.DB
	m     *keys.Manager
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	ring, err := keys.OpenKeyring(filepath.Join(dir, "keyring"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "keys.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := keys.OpenSQLStore(context.Background(), db, false)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, ring: ring, store: st, db: db}
	f.m = f.manager(t, time.Minute)
	return f
}

func (f *fixture) manager(t *testing.T, ttl time.Duration) *keys.Manager {
	t.Helper()
	m, err := keys.New(keys.Config{KMS: f.ring, KEKURI: f.ring.URI(), Store: f.store, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sealer(t *testing.T, m *keys.Manager, id string) store.TenantSealer {
	t.Helper()
	s, err := m.ForTenant(context.Background(), tenant.MustParse(id))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealedDataOpensOnlyForItsTenantCollectionAndRecord(t *testing.T) {
	f := newFixture(t)
	a, b := sealer(t, f.m, "acme"), sealer(t, f.m, "globex")
	data := []byte(`{"secret":"launch codes"}`)
	ct, err := a.Seal("docs", "r1", data)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := a.Open("docs", "r1", ct); err != nil || string(pt) != string(data) {
		t.Fatalf("open own record: %q %v", pt, err)
	}
	for name, open := range map[string]func() ([]byte, error){
		"another record id":  func() ([]byte, error) { return a.Open("docs", "r2", ct) },
		"another collection": func() ([]byte, error) { return a.Open("notes", "r1", ct) },
		"another tenant":     func() ([]byte, error) { return b.Open("docs", "r1", ct) },
		"one bit flipped": func() ([]byte, error) {
			bad := append([]byte(nil), ct...)
			bad[len(bad)-1] ^= 1
			return a.Open("docs", "r1", bad)
		},
	} {
		if pt, err := open(); !errors.Is(err, keys.ErrUndecryptable) || pt != nil {
			t.Errorf("%s: got %q, %v; want ErrUndecryptable", name, pt, err)
		}
	}
}

func TestDestroyShredsEveryCopy(t *testing.T) {
	f := newFixture(t)
	id := tenant.MustParse("acme")
	a := sealer(t, f.m, "acme")
	ct, _ := a.Seal("docs", "r1", []byte(`{"x":1}`))
	names, err := f.m.Destroy(context.Background(), id)
	if err != nil || len(names) != 2 {
		t.Fatalf("destroy: %v %v", names, err)
	}
	// A tenant re-created with the same id gets new keys: the old
	// ciphertext (a copy in a backup) no longer opens, even through a
	// fresh manager that never cached the old keys.
	fresh := sealer(t, f.manager(t, time.Minute), "acme")
	if _, err := fresh.Open("docs", "r1", ct); !errors.Is(err, keys.ErrUndecryptable) {
		t.Fatalf("open after shredding: %v", err)
	}
	if _, err := sealer(t, f.m, "acme").Open("docs", "r1", ct); !errors.Is(err, keys.ErrUndecryptable) {
		t.Fatalf("open after shredding through the shredding manager: %v", err)
	}
}

func TestRotationKeepsOldDataReadableUntilRetired(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := tenant.MustParse("acme")
	old := sealer(t, f.m, "acme")
	ct, _ := old.Seal("docs", "r1", []byte(`{"x":1}`))
	oldTok, _ := old.Index("docs", []byte(`{"k":"v"}`))
	other := f.manager(t, time.Hour) // another instance, caching the old keys
	_ = sealer(t, other, "acme")
	info, err := f.m.Rotate(ctx, id)
	if err != nil || len(info.DataKeys) != 2 || len(info.IndexKeys) != 2 {
		t.Fatalf("rotate: %+v %v", info, err)
	}
	cur := sealer(t, f.m, "acme")
	if cur.Current(ct) {
		t.Fatal("a ciphertext of the old key reported current")
	}
	if _, err := cur.Open("docs", "r1", ct); err != nil {
		t.Fatalf("old ciphertext after rotation: %v", err)
	}
	ct2, _ := cur.Seal("docs", "r1", []byte(`{"x":2}`))
	if !cur.Current(ct2) {
		t.Fatal("a new ciphertext is not current")
	}
	// The other instance has not seen the rotation: it reads the keys
	// again when it meets a ciphertext of a key it does not hold.
	if _, err := sealer(t, other, "acme").Open("docs", "r1", ct2); err != nil {
		t.Fatalf("stale instance opening a new ciphertext: %v", err)
	}
	// During a rotation a filter looks for tokens under both index keys.
	match, _ := cur.Match("docs", store.Filter{Field: "k", Value: "v"})
	newTok, _ := cur.Index("docs", []byte(`{"k":"v"}`))
	if !contains(match, oldTok[0]) || !contains(match, newTok[0]) || oldTok[0] == newTok[0] {
		t.Fatalf("match %v must hold the old %v and the new %v token", match, oldTok, newTok)
	}
	gone, err := f.m.Retire(ctx, id)
	if err != nil || len(gone) != 2 {
		t.Fatalf("retire: %v %v", gone, err)
	}
	after := sealer(t, f.m, "acme")
	if _, err := after.Open("docs", "r1", ct); !errors.Is(err, keys.ErrUndecryptable) {
		t.Fatalf("a retired key's ciphertext opened: %v", err)
	}
	if _, err := after.Open("docs", "r1", ct2); err != nil {
		t.Fatalf("current ciphertext after retire: %v", err)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestIndexTokensAgreeWithFilterMatches: a record's tokens hold one of a
// filter's tokens exactly when store.Filter.Matches says the filter
// matches the record.
func TestIndexTokensAgreeWithFilterMatches(t *testing.T) {
	f := newFixture(t)
	s := sealer(t, f.m, "acme")
	records := []string{
		`{"v":"42"}`, `{"v":42}`, `{"v":42.0}`, `{"v":4.2e1}`, `{"v":-0}`, `{"v":0}`, `{"v":"true"}`,
		`{"v":true}`, `{"v":false}`, `{"v":null}`, `{"v":[42]}`, `{"v":{"a":1}}`, `{"v":"é\n"}`,
		`{"v":1e999}`, `{"w":42}`, `{"v":""}`, `{"V":"42"}`,
	}
	values := []string{"42", "42.0", "4.2e1", "0", "-0", "true", "false", "null", "é\n", "", "x", "1e999"}
	for _, rec := range records {
		idx, err := s.Index("docs", []byte(rec))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			flt := store.Filter{Field: "v", Value: v}
			m, _ := s.Match("docs", flt)
			got := false
			for _, tok := range m {
				got = got || contains(idx, tok)
			}
			if want := flt.Matches([]byte(rec)); got != want {
				t.Errorf("record %s, filter v=eq.%q: tokens say %v, Matches says %v", rec, v, got, want)
			}
		}
	}
	// The same field and value in another collection has another token.
	a, _ := s.Index("docs", []byte(`{"v":"x"}`))
	b, _ := s.Index("notes", []byte(`{"v":"x"}`))
	if a[0] == b[0] {
		t.Fatal("tokens do not depend on the collection")
	}
}

func TestKeyringRotationRewrapsAndRetiresOldCopies(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := sealer(t, f.m, "acme")
	_ = sealer(t, f.m, "globex")
	ct, _ := a.Seal("docs", "r1", []byte(`{"x":1}`))
	before, _ := f.store.Load(ctx, tenant.MustParse("acme")) // a backup of the key store
	if _, err := f.ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	n, err := f.m.Rewrap(ctx, nil)
	if err != nil || n != 2 {
		t.Fatalf("rewrap: %d %v", n, err)
	}
	if _, err := f.ring.Retire(); err != nil {
		t.Fatal(err)
	}
	// The rewrapped keys still open the records (nothing re-encrypted).
	if _, err := sealer(t, f.manager(t, time.Minute), "acme").Open("docs", "r1", ct); err != nil {
		t.Fatalf("after keyring rotation: %v", err)
	}
	// The backup taken before no longer unwraps with the keyring.
	if err := f.store.Replace(ctx, tenant.MustParse("acme"), keys.Wrapped{Data: before.Data, Index: before.Index, Generation: 99}, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.manager(t, time.Minute).ForTenant(ctx, tenant.MustParse("acme")); err == nil {
		t.Fatal("a keyset wrapped under a retired keyring key unwrapped")
	}
	// Reopening the keyring file gives the same keys.
	if _, err := keys.OpenKeyring(filepath.Join(f.dir, "keyring")); err != nil {
		t.Fatal(err)
	}
}

func TestWrappedKeysetsAreBoundToTheirTenant(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_ = sealer(t, f.m, "acme")
	victim := sealer(t, f.m, "globex")
	ct, _ := victim.Seal("docs", "r1", []byte(`{"x":1}`))
	// Copy globex's wrapped keysets into acme's row: they do not unwrap
	// there, so acme cannot be made to hold globex's keys.
	g, _ := f.store.Load(ctx, tenant.MustParse("globex"))
	a, _ := f.store.Load(ctx, tenant.MustParse("acme"))
	if err := f.store.Replace(ctx, tenant.MustParse("acme"), keys.Wrapped{Data: g.Data, Index: g.Index, Generation: a.Generation + 1}, a.Generation); err != nil {
		t.Fatal(err)
	}
	s, err := f.manager(t, time.Minute).ForTenant(ctx, tenant.MustParse("acme"))
	if err == nil {
		if _, oerr := s.Open("docs", "r1", ct); oerr == nil {
			t.Fatal("acme opened globex's record with globex's copied keyset")
		}
		t.Fatal("a keyset copied from another tenant unwrapped")
	}
}

func TestKeyringFileIsPrivate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keyring")
	if _, err := keys.OpenKeyring(p); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring mode %v %v, want 0600", fi.Mode().Perm(), err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.OpenKeyring(p); err == nil {
		t.Fatal("a keyring readable by others was accepted")
	}
}

func TestCacheIsBounded(t *testing.T) {
	f := newFixture(t)
	m, err := keys.New(keys.Config{KMS: f.ring, KEKURI: f.ring.URI(), Store: f.store, CacheSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t1", "t2", "t3", "t4", "t5"} {
		_ = sealer(t, m, id)
	}
	if n := m.Cached(); n != 3 {
		t.Fatalf("cache holds %d tenants, want 3", n)
	}
}
