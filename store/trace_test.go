package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// tracedRouter is a router over a SQLite shard ("local") with acme pooled
// and globex in database mode, tracing on the real SDK into a recorder.
func tracedRouter(t *testing.T) (*store.Router, *tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	t.Helper()
	b, err := sqlite.Open(t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	modes := map[string]store.Mode{"acme": store.Pooled, "globex": store.Database}
	r, err := store.NewRouter(store.Config{
		Placements: placementFunc(func(_ context.Context, id tenant.ID) (store.Placement, error) {
			return store.Placement{Mode: modes[id.String()], Shard: "local"}, nil
		}),
		Backends:       map[string]store.Backend{"local": b},
		TracerProvider: tp,
	})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	for id, m := range modes {
		if err := r.Provision(context.Background(), tenant.MustParse(id), store.Placement{Mode: m, Shard: "local"}); err != nil {
			t.Fatal(err)
		}
	}
	return r, rec, tp
}

func attrsOf(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

func TestEachTransactionIsASpanOfItsTenant(t *testing.T) {
	r, rec, tp := tracedRouter(t)
	parentCtx, parent := tp.Tracer("test").Start(context.Background(), "request")
	const recID, value = "rec-canary-4c1", "value-canary-9e7"
	for _, id := range []string{"acme", "globex"} {
		ctx := tenant.WithID(parentCtx, tenant.MustParse(id))
		if err := r.Tx(ctx, func(tx *store.Tx) error {
			_, _, err := tx.Put(ctx, "notes", recID, json.RawMessage(`{"v":"`+value+`"}`), store.IfMatch{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		err := r.ReadTx(ctx, func(tx *store.Tx) error {
			_, err := tx.Get(ctx, "notes", "missing-"+recID)
			return err
		})
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get missing: %v", err)
		}
	}
	parent.End()
	var txs []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "store.tx" {
			txs = append(txs, s)
		}
	}
	if len(txs) != 4 {
		t.Fatalf("%d store.tx spans, want 4", len(txs))
	}
	for i, s := range txs {
		a := attrsOf(s)
		tn, mode := "acme", "pooled"
		if i >= 2 {
			tn, mode = "globex", "database"
		}
		write := i%2 == 0
		want := map[string]string{"bulkhead.tenant": tn, "bulkhead.store.mode": mode, "bulkhead.store.shard": "local",
			"db.system.name": "sqlite", "bulkhead.store.served_by": ""}
		if write {
			want["bulkhead.store.read_only"], want["bulkhead.store.outcome"] = "false", ""
		} else {
			want["bulkhead.store.read_only"], want["bulkhead.store.outcome"] = "true", "rollback"
			want["bulkhead.problem.code"] = "not_found"
		}
		for k, v := range want {
			if a[k] != v {
				t.Errorf("span %d: %s = %q, want %q (all: %v)", i, k, a[k], v, a)
			}
		}
		if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindClient {
			t.Errorf("span %d is not a client span under the caller's span", i)
		}
		if s.Status().Code == codes.Error {
			t.Errorf("span %d: a missing record failed the span: %v", i, s.Status())
		}
		for k, v := range a {
			if strings.Contains(v, "canary") || strings.Contains(v, "notes") {
				t.Errorf("span %d: attribute %s = %q holds a record id, value or collection", i, k, v)
			}
		}
	}
}

func TestABeginThatFailsEndsItsSpanAsFailed(t *testing.T) {
	r, rec, _ := tracedRouter(t)
	if err := r.ReadTx(context.Background(), func(*store.Tx) error { return nil }); !errors.Is(err, tenant.ErrMissing) {
		t.Fatalf("no tenant: %v", err)
	}
	ended := rec.Ended()
	if len(ended) != 1 || ended[0].Status().Code != codes.Error || attrsOf(ended[0])["bulkhead.problem.code"] != "tenant_missing" {
		t.Fatalf("spans %v, want one failed with tenant_missing", ended)
	}
	if _, ok := attrsOf(ended[0])["bulkhead.tenant"]; ok {
		t.Error("a transaction without a tenant names one")
	}
}

func TestErrorClassNamesSentinelsNotMessages(t *testing.T) {
	for err, want := range map[error]string{
		store.ErrNotFound: "not_found",
		errors.Join(errors.New("id x1 of tenant"), store.ErrConflict):    "conflict",
		&store.QuotaError{Resource: "bytes"}:                             "quota_exceeded",
		errors.New(`duplicate key value (tenant_id, id)=(acme, secret)`): "error",
		context.Canceled: "canceled",
	} {
		if got := store.ErrorClass(err); got != want {
			t.Errorf("ErrorClass(%v) = %q, want %q", err, got, want)
		}
	}
}
