package server_test

import (
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
)

// BenchmarkEncryptionOverhead runs BenchmarkDataPlane's load (the same
// tenants, records, clients, read share, rounds and round length flags)
// against two servers on the same engine, one encrypting record data (the
// default) and one with DisableEncryption, alternately, and reports both
// and the ops ratio encrypted/plain (target ≥ 0.9), for pooled tenants on
// PostgreSQL and SQLite.
//
//	BULKHEAD_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//	  go test -run '^$' -bench BenchmarkEncryptionOverhead -benchtime 1x ./server
func BenchmarkEncryptionOverhead(b *testing.B) {
	b.Run("postgres", func(b *testing.B) {
		open := func(disable bool) *benchServer {
			env := pgtest.New(b)
			return newBenchServerWith(b, server.Options{
				PostgresURL:            env.ServeURL,
				PostgresAdminURL:       env.AdminURL,
				PostgresDatabasePrefix: env.Prefix,
				DisableEncryption:      disable,
			}, "pooled")
		}
		compareEncryption(b, open(false), open(true), true)
	})
	b.Run("sqlite", func(b *testing.B) {
		enc := newBenchServerWith(b, server.Options{}, "pooled")
		plain := newBenchServerWith(b, server.Options{DisableEncryption: true}, "pooled")
		compareEncryption(b, enc, plain, false)
	})
}

// compareEncryption runs the data-plane load on both servers in
// alternate rounds (the order flips every round) and reports them.
func compareEncryption(b *testing.B, enc, plain *benchServer, pg bool) {
	var res [2]dataPlaneResult
	for range b.N {
		for round := range *dataPlaneRounds {
			order := []int{0, 1}
			if round%2 == 1 {
				order = []int{1, 0}
			}
			for _, v := range order {
				res[v].add(dataPlaneLoad(b, []*benchServer{enc, plain}[v], *dataPlaneRound))
			}
		}
	}
	e, p := res[0], res[1]
	b.ReportMetric(e.opsPerSec(), "encrypted-ops/s")
	b.ReportMetric(p.opsPerSec(), "plain-ops/s")
	b.ReportMetric(e.opsPerSec()/p.opsPerSec(), "ops-ratio")
	b.ReportMetric(float64(e.p99())/float64(p.p99()), "p99-ratio")
	b.ReportMetric(e.cpuPerOp(e.goCPU), "encrypted-go-µs/op")
	b.ReportMetric(p.cpuPerOp(p.goCPU), "plain-go-µs/op")
	if pg && e.pgCPU >= 0 && p.pgCPU >= 0 {
		b.ReportMetric(e.cpuPerOp(e.pgCPU), "encrypted-pg-µs/op")
		b.ReportMetric(p.cpuPerOp(p.pgCPU), "plain-pg-µs/op")
	}
}
