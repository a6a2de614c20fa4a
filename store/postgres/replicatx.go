package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var (
	_ store.ReplicaBackend   = (*Backend)(nil)
	_ store.CommitPositioner = (*tx)(nil)
)

// ReplicaMetrics counts the reads that opted in to a replica, by shard, who
// served them (served_by "replica" or "primary") and why (reason, see
// ReasonFresh and the others), as the Prometheus counter
// bulkhead_replica_reads_total. One value serves every shard of a process.
type ReplicaMetrics struct {
	reads *prometheus.CounterVec
}

// NewReplicaMetrics returns unregistered counters; register them with
// Collector.
func NewReplicaMetrics() *ReplicaMetrics {
	return &ReplicaMetrics{reads: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bulkhead_replica_reads_total",
		Help: "Read-only data-plane transactions that opted in to a read replica, by shard, who served them (replica or primary) and why (fresh: the replica had replayed what the read needed; token_ahead: it had not replayed the read-after token's commit; lagging: it lagged more than the bound; unreachable: it did not answer or is not usable; error: the read failed on it and ran again on the primary; new_tenant: the tenant was created, or created again, more recently than the replica could vouch for).",
	}, []string{"shard", "served_by", "reason"})}
}

// Collector returns the counters, to register on a prometheus.Registerer.
func (m *ReplicaMetrics) Collector() prometheus.Collector { return m.reads }

// Reads returns how many reads of shard were served by servedBy
// ("replica" or "primary") for reason.
func (m *ReplicaMetrics) Reads(shard, servedBy, reason string) float64 {
	c, err := m.reads.GetMetricWithLabelValues(shard, servedBy, reason)
	if err != nil {
		return 0
	}
	var v dto.Metric
	if err := c.Write(&v); err != nil {
		return 0
	}
	return v.GetCounter().GetValue()
}

func (m *ReplicaMetrics) count(shard, servedBy, reason string) {
	m.reads.WithLabelValues(shard, servedBy, reason).Inc()
}

// BeginReplica implements store.ReplicaBackend: a read-only transaction on
// the replica when it is usable, not lagging and has replayed position
// read.After and can vouch for the tenant's incarnation (see route);
// otherwise on the primary. Without a replica it is Begin.
func (b *Backend) BeginReplica(ctx context.Context, id tenant.ID, mode store.Mode, read store.ReplicaRead) (store.BackendTx, error) {
	r := b.replica
	if r == nil {
		return b.newTx(ctx, id, mode, false)
	}
	// The checks of the primary's path (a closed backend, an unsafe
	// serving role, a unit to upgrade, which only the primary can do).
	_, release, err := b.pool(ctx, id, mode)
	if err != nil {
		return nil, err
	}
	release()
	reason, behind := r.route(read)
	if reason != "" {
		return b.onPrimary(ctx, id, mode, reason)
	}
	pool, release, err := r.pool(id, mode)
	if err != nil {
		return b.onPrimary(ctx, id, mode, ReasonUnreachable)
	}
	t := &tx{b: b, pool: pool, tenant: id.String(), unit: unitSchema(id, mode), release: release}
	if err := t.acquire(ctx); err != nil {
		release()
		if ctx.Err() != nil {
			return nil, b.beginErr(id, mode, err)
		}
		reason := ReasonUnreachable
		if isCode(err, "3D000") { // a tenant database not replayed yet
			reason = ReasonError
		}
		return b.onPrimary(ctx, id, mode, reason)
	}
	if behind {
		var replay uint64
		err := t.conn.QueryRow(ctx, `SELECT pg_catalog.pg_last_wal_replay_lsn()::text`).Scan(lsnScanner{&replay})
		if err == nil {
			r.observeReplay(replay)
		}
		if err != nil || replay < read.After {
			t.done = true
			t.finish()
			if err != nil && ctx.Err() != nil {
				return nil, fmt.Errorf("postgres: begin: %w", err)
			}
			if err != nil {
				return b.onPrimary(ctx, id, mode, ReasonError)
			}
			return b.onPrimary(ctx, id, mode, ReasonTokenAhead)
		}
	}
	return &replicaTx{BackendTx: t, b: b, id: id, mode: mode, onReplica: true}, nil
}

// onPrimary opens the read on the primary and counts why.
func (b *Backend) onPrimary(ctx context.Context, id tenant.ID, mode store.Mode, reason string) (store.BackendTx, error) {
	t, err := b.newTx(ctx, id, mode, false)
	if err != nil {
		return nil, err
	}
	b.replica.opts.Metrics.count(b.shard.Name, "primary", reason)
	return t, nil
}

// replicaTx is a read-only transaction begun on the replica. A read that
// fails there for any reason but the record's absence or the caller's
// context runs again on the primary, and the transaction stays there. It
// is counted once it ends: served by the replica, or by the primary for
// ReasonError.
type replicaTx struct {
	store.BackendTx
	b         *Backend
	id        tenant.ID
	mode      store.Mode
	onReplica bool
	moved     bool // a read failed on the replica and moved to the primary
	counted   bool
}

// retry moves the transaction to the primary if err calls for it, and
// reports whether it did.
func (x *replicaTx) retry(ctx context.Context, err error) bool {
	if !x.onReplica || err == nil || errors.Is(err, store.ErrNotFound) || ctx.Err() != nil {
		return false
	}
	p, perr := x.b.newTx(ctx, x.id, x.mode, false)
	if perr != nil {
		return false
	}
	_ = x.BackendTx.Rollback()
	x.BackendTx, x.onReplica, x.moved = p, false, true
	return true
}

func (x *replicaTx) Get(ctx context.Context, collection, id string) (store.Record, error) {
	rec, err := x.BackendTx.Get(ctx, collection, id)
	if x.retry(ctx, err) {
		return x.BackendTx.Get(ctx, collection, id)
	}
	return rec, err
}

func (x *replicaTx) List(ctx context.Context, q store.Query) ([]store.Record, error) {
	recs, err := x.BackendTx.List(ctx, q)
	if x.retry(ctx, err) {
		return x.BackendTx.List(ctx, q)
	}
	return recs, err
}

func (x *replicaTx) Collections(ctx context.Context) ([]store.Collection, error) {
	cs, err := x.BackendTx.Collections(ctx)
	if x.retry(ctx, err) {
		return x.BackendTx.Collections(ctx)
	}
	return cs, err
}

// OnReplica implements store.ReplicaReporter: false once a read has moved
// to the primary.
func (x *replicaTx) OnReplica() bool { return x.onReplica && !x.moved }

func (x *replicaTx) count() {
	if x.counted {
		return
	}
	x.counted = true
	m := x.b.replica.opts.Metrics
	if x.moved {
		m.count(x.b.shard.Name, "primary", ReasonError)
	} else {
		m.count(x.b.shard.Name, "replica", ReasonFresh)
	}
}

func (x *replicaTx) Commit() error {
	x.count()
	return x.BackendTx.Commit()
}

func (x *replicaTx) Rollback() error {
	x.count()
	return x.BackendTx.Rollback()
}

// readCommitLSN records, after a COMMIT on t's connection, the primary's
// WAL insert position, which is at or past the end of the commit's record:
// a replica that has replayed it sees the transaction's writes. Only a
// shard with a replica pays the round trip.
func (t *tx) readCommitLSN(ctx context.Context) {
	if t.b.replica == nil || t.conn == nil || t.conn.Conn().IsClosed() {
		return
	}
	var lsn uint64
	if err := t.conn.QueryRow(ctx, `SELECT pg_catalog.pg_current_wal_insert_lsn()::text`).Scan(lsnScanner{&lsn}); err == nil {
		t.lsn = lsn
	}
}

// CommitPosition implements store.CommitPositioner.
func (t *tx) CommitPosition() (uint64, bool) { return t.lsn, t.lsn != 0 }

// lsnScanner scans a pg_lsn's text ("16/B374D848") as a number; NULL is 0.
type lsnScanner struct{ p *uint64 }

func (s lsnScanner) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s.p = 0
		return nil
	case string:
		n, err := parseLSN(v)
		*s.p = n
		return err
	case []byte:
		n, err := parseLSN(string(v))
		*s.p = n
		return err
	}
	return fmt.Errorf("postgres: scan LSN from %T", src)
}

// parseLSN parses a pg_lsn's text form.
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("postgres: malformed LSN %q", s)
	}
	return h<<32 | l, nil
}
