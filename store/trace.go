package store

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tracing"
)

// Tracing: every transaction the Router opens is one span, "store.tx",
// from Begin to Commit or Rollback, the child of the span in Begin's
// context (Config.TracerProvider; the global provider if nil). Its
// attributes say where it ran, never what it read or wrote: the tenant,
// the shard, the isolation mode, the backend (BackendNamer), read-only or
// write, own SQL, whether a replica was asked for and then whether one
// served it (ReplicaReporter), and a rollback (bulkhead.store.outcome; a
// commit is the common case and is not marked, unless a replica was asked
// for), with a stable error class such as "not_found" or "conflict", never an error's
// message, which may quote a record id or a value).

// The attributes of a store.tx span.
const (
	attrShard    = attribute.Key("bulkhead.store.shard")
	attrMode     = attribute.Key("bulkhead.store.mode")
	attrReadOnly = attribute.Key("bulkhead.store.read_only")
	attrSQL      = attribute.Key("bulkhead.store.own_sql")
	attrAskRep   = attribute.Key("bulkhead.store.replica_requested")
	attrServedBy = attribute.Key("bulkhead.store.served_by")
	attrOutcome  = attribute.Key("bulkhead.store.outcome")
	attrSystem   = attribute.Key("db.system.name")
)

// BackendNamer is the optional capability of a Backend to name its engine
// for traces, as OpenTelemetry's db.system.name does ("sqlite",
// "postgresql").
type BackendNamer interface {
	BackendName() string
}

// ReplicaReporter is the optional capability of a BackendTx opened by
// ReplicaBackend.BeginReplica to say whether a replica served it (false:
// the primary did). A transaction that does not implement it was served by
// the primary.
type ReplicaReporter interface {
	OnReplica() bool
}

// startTx starts the span of a transaction in ctx.
func (r *Router) startTx(ctx context.Context) trace.Span {
	return r.tracer.StartLeaf(ctx, "store.tx", trace.SpanKindClient)
}

// describeTx sets the attributes of a transaction known once it began.
func describeTx(span trace.Span, sc Scope, opts TxOptions) {
	if !span.IsRecording() {
		return
	}
	attrs := append(tracing.Scratch(), tracing.TenantKey.String(sc.Tenant.String()),
		attrShard.String(sc.Placement.Shard), attrMode.String(string(sc.Placement.Mode)),
		attrReadOnly.Bool(opts.ReadOnly))
	if opts.SQL {
		attrs = append(attrs, attrSQL.Bool(true))
	}
	if opts.Replica && isReplicaBackend(sc.backend) {
		attrs = append(attrs, attrAskRep.Bool(true))
	}
	if n, ok := sc.backend.(BackendNamer); ok {
		attrs = append(attrs, attrSystem.String(n.BackendName()))
	}
	span.SetAttributes(attrs...)
	tracing.Release(attrs)
}

// beginFailed ends the span of a transaction that did not begin.
func beginFailed(ctx context.Context, span trace.Span, err error) {
	if span.IsRecording() {
		if id, e := tenant.FromContext(ctx); e == nil {
			span.SetAttributes(tracing.TenantKey.String(id.String()))
		}
		tracing.Fail(span, ErrorClass(err))
	}
	span.End()
}

// endSpan ends the transaction's span: outcome is "commit" or "rollback",
// err the commit's error.
func (tx *Tx) endSpan(outcome string, err error) {
	span := tx.span
	if span == nil || !span.IsRecording() {
		return
	}
	// A write that committed is the common case: no attribute for it.
	switch {
	case tx.askedReplica && tx.btx != nil:
		served := "primary"
		if rr, ok := tx.btx.(ReplicaReporter); ok && rr.OnReplica() {
			served = "replica"
		}
		span.SetAttributes(attrOutcome.String(outcome), attrServedBy.String(served))
	case outcome != "commit":
		span.SetAttributes(attrOutcome.String(outcome))
	}
	if err != nil {
		tracing.Fail(span, ErrorClass(err))
	}
	span.End()
}

// failed records on the transaction's span the error that made its
// function give up (Run): a client's mistake (a missing record, a
// conflict, invalid input, a quota) is an attribute, anything else a
// failure.
func (tx *Tx) failed(err error) {
	if tx.span == nil || !tx.span.IsRecording() {
		return
	}
	class := ErrorClass(err)
	switch class {
	case "error", "tenant_mismatch", "unknown_shard", "sealed", "canceled":
		tracing.Fail(tx.span, class)
	default:
		tx.span.SetAttributes(tracing.ProblemKey.String(class))
	}
}

// errorClasses name the store's sentinels in traces.
var errorClasses = []struct {
	err   error
	class string
}{
	{ErrNotFound, "not_found"},
	{ErrConflict, "conflict"},
	{ErrPrecondition, "precondition_failed"},
	{ErrQuotaExceeded, "quota_exceeded"},
	{ErrInvalidCollection, "invalid_collection"},
	{ErrInvalidRecordID, "invalid_record_id"},
	{ErrInvalidData, "invalid_data"},
	{ErrInvalidCursor, "invalid_cursor"},
	{ErrInvalidFilter, "invalid_filter"},
	{ErrInvalidLimit, "invalid_limit"},
	{ErrInvalidReadAfter, "invalid_read_after"},
	{ErrUnknownTenant, "unknown_tenant"},
	{ErrUnknownShard, "unknown_shard"},
	{ErrTenantMismatch, "tenant_mismatch"},
	{ErrIsolationUnsupported, "isolation_unsupported"},
	{ErrSealed, "sealed"},
	{ErrTxDone, "tx_done"},
	{tenant.ErrMissing, "tenant_missing"},
	{context.Canceled, "canceled"},
	{context.DeadlineExceeded, "canceled"},
}

// ErrorClass returns a stable, data-free name for err's kind: the store
// sentinel it wraps ("not_found", "conflict", "quota_exceeded"...), or
// "error". Traces and metrics record it instead of an error's message,
// which may quote a record id, a value or SQL.
func ErrorClass(err error) string {
	for _, c := range errorClasses {
		if errors.Is(err, c.err) {
			return c.class
		}
	}
	return "error"
}

func isReplicaBackend(b Backend) bool {
	_, ok := b.(ReplicaBackend)
	return ok
}
