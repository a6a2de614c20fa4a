package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Sizes of BenchTokenFilter's data.
const (
	benchTokenRecords = 100_000 // of the measured tenant, plaintext and sealed each
	benchTokenOthers  = 3       // other tenants, with the same tokens
	benchTokenOther   = 1_000   // records of each other tenant, plaintext and sealed each
	benchTokenChunk   = 1_000   // records per loading transaction
	benchTokenSpread  = 10_000  // distinct tags: a tag selects records/spread records
)

// benchPlain is the plaintext of record g of a benchmark tenant.
func benchPlain(owner string, g int) string {
	return fmt.Sprintf(`{"owner":%q,"n":%d,"title":"record %d of a benchmark tenant","tag":"t%d","done":false}`,
		owner, g, g, g%benchTokenSpread)
}

// benchSealed is that record as the sealing layer would store it: a
// ciphertext the size of the plaintext's (plus nonce and tag) and a token
// for each top-level field.
func benchSealed(owner string, g int) string {
	size := len(benchPlain(owner, g)) + 28
	cipher := make([]byte, 0, size+32)
	for seed := sha256.Sum256([]byte(fmt.Sprint(owner, g))); len(cipher) < size; seed = sha256.Sum256(seed[:]) {
		cipher = append(cipher, seed[:]...)
	}
	return Envelope(base64.RawURLEncoding.EncodeToString(cipher[:size]),
		TokenOf("owner", owner), TokenOf("n", fmt.Sprint(g)), TokenOf("title", fmt.Sprintf("record %d of a benchmark tenant", g)),
		TokenOf("tag", fmt.Sprintf("t%d", g%benchTokenSpread)), TokenOf("done", "false"))
}

// benchLoad inserts n records of tenant name, plaintext in collection
// "plain" and sealed in "sealed", through the backend, benchTokenChunk per
// transaction.
func (e *Env) benchLoad(b *testing.B, name string, n int) {
	b.Helper()
	ctx := context.Background()
	id := tenant.MustParse(name)
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for start := 0; start < n; start += benchTokenChunk {
		tx, err := e.Backend.Begin(ctx, id, e.Mode, true)
		if err != nil {
			b.Fatal(err)
		}
		for g := start; g < min(n, start+benchTokenChunk); g++ {
			rid := fmt.Sprintf("rec-%06d", g)
			for coll, data := range map[string]string{"plain": benchPlain(name, g), "sealed": benchSealed(name, g)} {
				rec := store.Record{Collection: coll, ID: rid, Data: []byte(data), Version: 1, CreatedAt: now, UpdatedAt: now}
				if err := tx.Insert(ctx, rec); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchTokenFilter measures an equality filter that selects 10 of a
// tenant's 100,000 records (other tenants hold records with the same
// tokens), listed through the backend in a read-only transaction: on
// plaintext data (plain), and on the same records sealed, matched by
// their tokens (sealed). Rounds alternate the order of the two, so that
// load from other processes hits both alike; it reports each one's time
// per list and sealed/plain, the ratio of the totals.
func BenchTokenFilter(b *testing.B, be store.Backend, mode store.Mode) {
	e := NewEnv(b, be, mode)
	e.Tenant(b, "bench")
	e.benchLoad(b, "bench", benchTokenRecords)
	for i := range benchTokenOthers {
		name := fmt.Sprintf("bench-other-%d", i)
		e.Tenant(b, name)
		e.benchLoad(b, name, benchTokenOther)
	}
	filters := []store.Filter{{Field: "tag", Value: "t42"}}
	queries := []store.Query{
		{Collection: "plain", Filters: filters, Limit: store.MaxLimit},
		{Collection: "sealed", Filters: filters, Limit: store.MaxLimit,
			Tokens: [][]string{{TokenOf("tag", "t42"), TokenOf("tag", "42")}}},
	}
	id := tenant.MustParse("bench")
	list := func(q store.Query) int {
		ctx := context.Background()
		tx, err := be.Begin(ctx, id, mode, false)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		recs, err := tx.List(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		return len(recs)
	}
	want := benchTokenRecords / benchTokenSpread
	for _, q := range queries { // warm up; check the selection
		if n := list(q); n != want {
			b.Fatalf("%s: %d records, want %d", q.Collection, n, want)
		}
	}
	var total [2]time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range queries {
			v := (k + i) % len(queries)
			start := time.Now()
			list(queries[v])
			total[v] += time.Since(start)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(total[0].Nanoseconds())/n, "plain-ns/list")
	b.ReportMetric(float64(total[1].Nanoseconds())/n, "sealed-ns/list")
	b.ReportMetric(float64(total[1])/float64(total[0]), "sealed/plain")
}
