package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
)

// BenchmarkReplicaReadShare runs a read-heavy load over 8 pooled tenants:
// 95 % point reads that opt in to the replica, 5 % writes; with tokens,
// the read that follows each write of a worker presents the write's
// commit token (read-your-writes), the others none. It runs once on a
// shard without a replica (the baseline: every read on the primary) and
// with the replica on 127.0.0.1:5433, and reports the share of reads the
// replica served (replica_share, target >= 0.95), the share sent to the
// primary because the replica had not replayed the token yet
// (token_ahead_share) and ops/s. Both clusters share this machine's
// cores, so no throughput gain can show here: a replica adds capacity
// only on its own machine.
func BenchmarkReplicaReadShare(b *testing.B) {
	env := pgtest.New(b)
	rep := pgtest.NewReplica(b, env, false)
	for _, c := range []struct {
		name           string
		replica, token bool
	}{{"primary-only", false, true}, {"with-replica/read-your-writes", true, true}, {"with-replica/no-tokens", true, false}} {
		name := c.name
		withReplica := c.replica
		ro := ReplicaOptions{}
		if withReplica {
			ro = ReplicaOptions{URL: rep.ServeURL, Logger: slog.New(slog.DiscardHandler)}
		}
		b.Run(name, func(b *testing.B) {
			be := open(b, env, Options{MaxConns: 16, Replica: ro})
			e := storetest.NewEnv(b, be, store.Pooled)
			ctxs := make([]context.Context, 8)
			for i := range ctxs {
				ctxs[i] = e.Tenant(b, fmt.Sprintf("t%d", i))
				if err := e.Router.Tx(ctxs[i], func(tx *store.Tx) error {
					for r := 0; r < 100; r++ {
						if _, _, err := tx.Put(ctxs[i], "c", fmt.Sprintf("r%03d", r), []byte(`{"n":0}`), store.IfMatch{}); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			rep.CatchUp(b)
			if withReplica {
				waitUsable(b, be)
			}
			var mu sync.Mutex
			worker := 0
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				ctx := ctxs[worker%len(ctxs)]
				worker++
				mu.Unlock()
				rng := rand.New(rand.NewPCG(uint64(worker), 7))
				token := ""
				for pb.Next() {
					id := fmt.Sprintf("r%03d", rng.IntN(100))
					op := rng.IntN(100)
					var err error
					switch {
					case op < 5:
						var tx *store.Tx
						if tx, err = e.Router.Begin(ctx, store.TxOptions{}); err == nil {
							if _, _, err = tx.Put(ctx, "c", id, []byte(`{"n":1}`), store.IfMatch{}); err == nil {
								err = tx.Commit()
								if c.token {
									token = tx.CommitToken()
								}
							}
							tx.Rollback()
						}
					default:
						rctx := ctx
						if token != "" {
							rctx, token = store.WithReadAfter(ctx, token), ""
						}
						err = e.Router.Run(rctx, replicaRead, func(tx *store.Tx) error {
							_, err := tx.Get(rctx, "c", id)
							return err
						})
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
			if withReplica {
				m := be.ReplicaMetrics()
				var total float64
				for _, by := range []struct{ servedBy, reason string }{
					{"replica", ReasonFresh}, {"primary", ReasonTokenAhead}, {"primary", ReasonLagging},
					{"primary", ReasonUnreachable}, {"primary", ReasonError},
				} {
					total += m.Reads(storetest.Shard, by.servedBy, by.reason)
				}
				if total > 0 {
					b.ReportMetric(m.Reads(storetest.Shard, "replica", ReasonFresh)/total, "replica_share")
					b.ReportMetric(m.Reads(storetest.Shard, "primary", ReasonTokenAhead)/total, "token_ahead_share")
				}
			}
		})
	}
}
