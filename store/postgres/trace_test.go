package postgres

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
)

// A transaction's span says whether a replica or the primary served it,
// and names the engine and the tenant.
func TestTransactionSpansSayWhoServedThem(t *testing.T) {
	r := newReplicaEnv(t, store.Pooled, false, ReplicaOptions{MaxLag: time.Hour})
	ctx := r.e.Tenant(t, "acme")
	r.put(t, ctx, `{"v":1}`)
	r.catchUp(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	router, err := store.NewRouter(store.Config{Placements: r.e.Placements, Backends: r.e.Shards, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []store.TxOptions{replicaRead, {ReadOnly: true}, {}} {
		if err := router.Run(ctx, opts, func(tx *store.Tx) error {
			_, err := tx.Get(ctx, "notes", "n1")
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	want := []map[string]string{
		{"bulkhead.store.replica_requested": "true", "bulkhead.store.served_by": "replica", "bulkhead.store.read_only": "true"},
		{"bulkhead.store.replica_requested": "", "bulkhead.store.served_by": "", "bulkhead.store.read_only": "true"},
		{"bulkhead.store.replica_requested": "", "bulkhead.store.served_by": "", "bulkhead.store.read_only": "false"},
	}
	for i, s := range spans {
		a := map[string]string{}
		for _, kv := range s.Attributes() {
			a[string(kv.Key)] = kv.Value.Emit()
		}
		want[i]["bulkhead.tenant"], want[i]["db.system.name"] = "acme", "postgresql"
		want[i]["bulkhead.store.shard"], want[i]["bulkhead.store.mode"] = storetest.Shard, "pooled"
		for k, v := range want[i] {
			if a[k] != v {
				t.Errorf("span %d: %s = %q, want %q (all: %v)", i, k, a[k], v, a)
			}
		}
	}
	_ = tp.Shutdown(context.Background())
}
