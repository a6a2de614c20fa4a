package keys_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/keys"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// benchManager is a Manager over a SQLite key store (synchronous off: the
// benchmarks create many keys) and a keyring in a temporary directory.
func benchManager(b *testing.B, dir string) *keys.Manager {
	b.Helper()
	ring, err := keys.OpenKeyring(filepath.Join(dir, "keyring"))
	if err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "keys.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	st, err := keys.OpenSQLStore(context.Background(), db, false)
	if err != nil {
		b.Fatal(err)
	}
	m, err := keys.New(keys.Config{KMS: ring, KEKURI: ring.URI(), Store: st, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkSealOverhead seals 1 KiB with a tenant's cached key
// (Manager.ForTenant, then Seal: Tink AES-256-GCM bound to tenant,
// collection and record) against bare AES-256-GCM (crypto/aes and
// cipher.NewGCM, a random nonce, the same associated data), alternately
// in rounds of b.N operations each, and reports both and their ratio
// (target ≤ 1.25).
//
//	go test -run '^$' -bench BenchmarkSealOverhead -benchtime 20000x ./keys
func BenchmarkSealOverhead(b *testing.B) {
	ctx := context.Background()
	m := benchManager(b, b.TempDir())
	id := tenant.MustParse("acme")
	if _, err := m.ForTenant(ctx, id); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 1024)
	_, _ = rand.Read(data)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	ad := []byte("bulkhead/record/v1\x00acme\x00docs\x00r-000001")
	sealed := func() {
		ts, err := m.ForTenant(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ts.Seal("docs", "r-000001", data); err != nil {
			b.Fatal(err)
		}
	}
	raw := func() {
		out := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(data)+gcm.Overhead())
		_, _ = rand.Read(out)
		_ = gcm.Seal(out, out, data, ad)
	}
	var took [2]time.Duration
	const rounds = 6
	b.ResetTimer()
	for round := range rounds {
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		for _, v := range order {
			f := []func(){sealed, raw}[v]
			start := time.Now()
			for range b.N {
				f()
			}
			took[v] += time.Since(start)
		}
	}
	n := float64(rounds * b.N)
	b.ReportMetric(float64(took[0].Nanoseconds())/n, "sealer-ns/op")
	b.ReportMetric(float64(took[1].Nanoseconds())/n, "raw-gcm-ns/op")
	b.ReportMetric(float64(took[0])/float64(took[1]), "ratio")
}

// BenchmarkKeyCacheMemory loads 10,000 tenants' keys into a Manager (its
// default cache bound) and reports how much the live heap grew, in MiB
// and per tenant (target ≤ 64 MiB).
//
//	go test -run '^$' -bench BenchmarkKeyCacheMemory -benchtime 1x ./keys
func BenchmarkKeyCacheMemory(b *testing.B) {
	const tenants = 10000
	ctx := context.Background()
	dir := b.TempDir()
	ids := make([]tenant.ID, tenants)
	maker := benchManager(b, dir)
	for i := range ids {
		ids[i] = tenant.MustParse(fmt.Sprintf("tenant-%05d", i))
		if err := maker.Create(ctx, ids[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var grew float64
	for range b.N {
		m := benchManager(b, dir) // the same store and keyring, an empty cache
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, id := range ids {
			if _, err := m.ForTenant(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if m.Cached() != tenants {
			b.Fatalf("%d tenants cached, want %d", m.Cached(), tenants)
		}
		runtime.KeepAlive(m)
		grew += float64(after.HeapAlloc) - float64(before.HeapAlloc)
	}
	grew /= float64(b.N)
	b.ReportMetric(grew/(1<<20), "heap-MiB")
	b.ReportMetric(grew/tenants/1024, "KiB/tenant")
}
