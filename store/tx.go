package store

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/trace"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Tx is a transaction scoped to one tenant. It can only be had from
// Router.Begin, Router.Tx or Router.ReadTx. A Tx is not safe for concurrent
// use.
//
// A write's own checks (ids, data, If-Match, quotas) answer at once. A
// backend may send the write itself later, with the transaction's next
// statement or its commit (PostgreSQL does, to save round trips): a write
// that then finds the record changed underneath is an ErrConflict from that
// statement or from Commit, and the transaction changes nothing. Act on a
// write's success only after Commit.
type Tx struct {
	r        *Router
	tenant   tenant.ID
	shard    string // the tenant's shard, which commit tokens name
	btx      BackendTx
	readOnly bool
	done     bool
	// seal encrypts the tenant's record data (nil: stored in the clear).
	seal TenantSealer
	// after is the tenant's usage after this transaction's writes so far,
	// known once a write has locked the usage row (afterKnown).
	after      Usage
	afterKnown bool
	// appended: a write appended an event to the outbox.
	appended bool
	// span traces the transaction (trace.go); it never records when
	// tracing is off.
	span         trace.Span
	askedReplica bool // TxOptions.Replica, for the span
}

// Tenant returns the tenant the transaction is scoped to.
func (tx *Tx) Tenant() tenant.ID { return tx.tenant }

// check fails closed if the transaction is finished or ctx names another tenant.
func (tx *Tx) check(ctx context.Context) error {
	if tx.done {
		return ErrTxDone
	}
	if id, err := tenant.FromContext(ctx); err == nil && id != tx.tenant {
		return ErrTenantMismatch
	}
	return ctx.Err()
}

func (tx *Tx) checkWrite(ctx context.Context) error {
	if err := tx.check(ctx); err != nil {
		return err
	}
	if tx.readOnly {
		return errors.New("store: write in a read-only transaction")
	}
	return nil
}

// Commit commits the transaction.
func (tx *Tx) Commit() error {
	if tx.done {
		return ErrTxDone
	}
	tx.done = true
	if err := tx.btx.Commit(); err != nil {
		tx.endSpan("commit", err)
		return err
	}
	tx.endSpan("commit", nil)
	if tx.appended && tx.r.committed != nil {
		tx.r.committed(tx.tenant)
	}
	return nil
}

// Rollback aborts the transaction. It is safe to call after Commit.
func (tx *Tx) Rollback() error {
	if tx.done {
		return nil
	}
	tx.done = true
	err := tx.btx.Rollback()
	tx.endSpan("rollback", nil)
	return err
}

// Get returns the record, or ErrNotFound.
func (tx *Tx) Get(ctx context.Context, collection, id string) (Record, error) {
	if err := tx.check(ctx); err != nil {
		return Record{}, err
	}
	if err := ValidCollection(collection); err != nil {
		return Record{}, err
	}
	if err := ValidRecordID(id); err != nil {
		return Record{}, err
	}
	rec, err := tx.btx.Get(ctx, collection, id)
	if err != nil {
		return Record{}, err
	}
	return tx.open(rec)
}

// Put creates the record (created = true, version 1) or replaces it
// (version + 1). A set precondition that the record does not meet — or a
// precondition on a missing record — gives ErrPrecondition.
func (tx *Tx) Put(ctx context.Context, collection, id string, data []byte, cond IfMatch) (rec Record, created bool, err error) {
	if err := tx.checkWrite(ctx); err != nil {
		return Record{}, false, err
	}
	if err := ValidCollection(collection); err != nil {
		return Record{}, false, err
	}
	if err := ValidRecordID(id); err != nil {
		return Record{}, false, err
	}
	norm, err := NormalizeData(data)
	if err != nil {
		return Record{}, false, err
	}
	stored, err := tx.stored(collection, id, norm)
	if err != nil {
		return Record{}, false, err
	}
	now := tx.r.now().UTC().Truncate(1e3)
	// cur is the record as stored (its data perhaps sealed): Put needs its
	// version, creation time and size in the clear, never its data.
	usage, tracked, cur, err := tx.lockUsageGet(ctx, collection, id)
	switch {
	case errors.Is(err, ErrNotFound):
		if cond.set() {
			return Record{}, false, fmt.Errorf("%w: record does not exist", ErrPrecondition)
		}
		d := Usage{Records: 1, Bytes: int64(len(norm))}
		if tracked {
			if err := tx.admit(ctx, usage, d); err != nil {
				return Record{}, false, err
			}
		}
		rec = Record{ID: id, Collection: collection, Data: stored, Version: 1, CreatedAt: now, UpdatedAt: now}
		if err := tx.btx.Insert(ctx, rec); err != nil {
			return Record{}, false, err
		}
		if err := tx.appendEvent(ctx, OpCreate, rec); err != nil {
			return Record{}, false, err
		}
		rec.Data = norm
		if tracked {
			if err := tx.addUsage(ctx, d); err != nil {
				return Record{}, false, err
			}
		}
		return rec, true, nil
	case err != nil:
		return Record{}, false, err
	}
	if cond.Version != 0 && cond.Version != cur.Version {
		return Record{}, false, fmt.Errorf("%w: record is at version %d", ErrPrecondition, cur.Version)
	}
	d := Usage{Bytes: int64(len(norm)) - plainSize(cur.Data)}
	if tracked {
		if err := tx.admit(ctx, usage, d); err != nil {
			return Record{}, false, err
		}
	}
	rec = Record{ID: id, Collection: collection, Data: stored, Version: cur.Version + 1, CreatedAt: cur.CreatedAt, UpdatedAt: now}
	if err := tx.btx.Update(ctx, rec, cur.Version); err != nil {
		return Record{}, false, err
	}
	if err := tx.appendEvent(ctx, OpUpdate, rec); err != nil {
		return Record{}, false, err
	}
	rec.Data = norm
	if tracked {
		if err := tx.addUsage(ctx, d); err != nil {
			return Record{}, false, err
		}
	}
	return rec, false, nil
}

// Create stores data as a new record with a server-made opaque id.
func (tx *Tx) Create(ctx context.Context, collection string, data []byte) (Record, error) {
	if err := tx.checkWrite(ctx); err != nil {
		return Record{}, err
	}
	if err := ValidCollection(collection); err != nil {
		return Record{}, err
	}
	norm, err := NormalizeData(data)
	if err != nil {
		return Record{}, err
	}
	id := newRecordID()
	stored, err := tx.stored(collection, id, norm)
	if err != nil {
		return Record{}, err
	}
	now := tx.r.now().UTC().Truncate(1e3)
	usage, tracked, err := tx.lockUsage(ctx)
	if err != nil {
		return Record{}, err
	}
	d := Usage{Records: 1, Bytes: int64(len(norm))}
	if tracked {
		if err := tx.admit(ctx, usage, d); err != nil {
			return Record{}, err
		}
	}
	rec := Record{ID: id, Collection: collection, Data: stored, Version: 1, CreatedAt: now, UpdatedAt: now}
	if err := tx.btx.Insert(ctx, rec); err != nil {
		return Record{}, err
	}
	if err := tx.appendEvent(ctx, OpCreate, rec); err != nil {
		return Record{}, err
	}
	rec.Data = norm
	if tracked {
		if err := tx.addUsage(ctx, d); err != nil {
			return Record{}, err
		}
	}
	return rec, nil
}

// Delete removes the record, or returns ErrNotFound. A set precondition the
// record does not meet — or any precondition on a missing record — gives
// ErrPrecondition.
func (tx *Tx) Delete(ctx context.Context, collection, id string, cond IfMatch) error {
	if err := tx.checkWrite(ctx); err != nil {
		return err
	}
	if err := ValidCollection(collection); err != nil {
		return err
	}
	if err := ValidRecordID(id); err != nil {
		return err
	}
	if _, ok := tx.btx.(usageGetTx); ok {
		_, tracked, cur, err := tx.lockUsageGet(ctx, collection, id)
		return tx.deleteRecord(ctx, collection, id, cond, tracked, cur, err)
	}
	_, tracked, err := tx.lockUsage(ctx)
	if err != nil {
		return err
	}
	if cond.set() || tracked || tx.events() != nil {
		cur, err := tx.btx.Get(ctx, collection, id)
		return tx.deleteRecord(ctx, collection, id, cond, tracked, cur, err)
	}
	return tx.btx.Delete(ctx, collection, id)
}

// deleteRecord deletes the record cur (read under the tenant's usage lock
// if tracked, with error err), checking cond.
func (tx *Tx) deleteRecord(ctx context.Context, collection, id string, cond IfMatch, tracked bool, cur Record, err error) error {
	if errors.Is(err, ErrNotFound) {
		if cond.set() {
			return fmt.Errorf("%w: record does not exist", ErrPrecondition)
		}
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if cond.Version != 0 && cur.Version != cond.Version {
		return fmt.Errorf("%w: record is at version %d", ErrPrecondition, cur.Version)
	}
	if err := tx.btx.Delete(ctx, collection, id); err != nil {
		return err
	}
	if err := tx.appendEvent(ctx, OpDelete, Record{Collection: collection, ID: id, Version: cur.Version, UpdatedAt: tx.r.now().UTC().Truncate(1e3)}); err != nil {
		return err
	}
	if !tracked {
		return nil
	}
	return tx.addUsage(ctx, Usage{Records: -1, Bytes: -plainSize(cur.Data)})
}

// List returns one page of the collection in ascending id order.
func (tx *Tx) List(ctx context.Context, collection string, opts ListOptions) (Page, error) {
	if err := tx.check(ctx); err != nil {
		return Page{}, err
	}
	if err := ValidCollection(collection); err != nil {
		return Page{}, err
	}
	if tx.r.cursors == nil {
		return Page{}, fmt.Errorf("list %s: %w", collection, ErrNoCursorKey)
	}
	limit := opts.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 1 || limit > MaxLimit {
		return Page{}, fmt.Errorf("%w: must be 1 to %d", ErrInvalidLimit, MaxLimit)
	}
	if len(opts.Filters) > MaxFilters {
		return Page{}, fmt.Errorf("%w: at most %d filters", ErrInvalidFilter, MaxFilters)
	}
	for _, f := range opts.Filters {
		if _, err := ParseFilter(f.Field, "eq."+f.Value); err != nil {
			return Page{}, err
		}
	}
	var after string
	if opts.Cursor != "" {
		a, err := tx.r.cursors.Decode(tx.tenant, collection, opts.Filters, opts.Cursor)
		if err != nil {
			return Page{}, err
		}
		after = a
	}
	toks, err := tx.tokens(collection, opts.Filters)
	if err != nil {
		return Page{}, err
	}
	recs, err := tx.btx.List(ctx, Query{Collection: collection, Filters: opts.Filters, Tokens: toks, After: after, Limit: limit + 1})
	if err != nil {
		return Page{}, err
	}
	for i := range recs {
		if recs[i], err = tx.open(recs[i]); err != nil {
			return Page{}, err
		}
	}
	page := Page{Items: recs}
	if len(recs) > limit {
		page.Items = recs[:limit]
		page.NextCursor = tx.r.cursors.Encode(tx.tenant, collection, opts.Filters, page.Items[limit-1].ID)
	}
	if page.Items == nil {
		page.Items = []Record{}
	}
	return page, nil
}

// Collections returns the tenant's collections with record counts.
func (tx *Tx) Collections(ctx context.Context) ([]Collection, error) {
	if err := tx.check(ctx); err != nil {
		return nil, err
	}
	cs, err := tx.btx.Collections(ctx)
	if cs == nil && err == nil {
		cs = []Collection{}
	}
	return cs, err
}

// usageGetTx is an optional capability of a BackendTx that keeps usage
// (UsageTx): LockUsageGet is LockUsage followed by Get, in one round trip
// to the database where the engine can send both at once. It returns the
// usage even when the record does not exist (err is then ErrNotFound).
type usageGetTx interface {
	LockUsageGet(ctx context.Context, collection, id string) (Usage, Record, error)
}

// lockUsageGet locks the tenant's usage if the backend keeps it (tracked),
// then reads the record, which the lock then holds against the tenant's
// other writers. err is ErrNotFound for a missing record, with u and
// tracked set.
func (tx *Tx) lockUsageGet(ctx context.Context, collection, id string) (u Usage, tracked bool, rec Record, err error) {
	if ug, ok := tx.btx.(usageGetTx); ok {
		u, rec, err = ug.LockUsageGet(ctx, collection, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Usage{}, false, Record{}, err
		}
		tx.after, tx.afterKnown = u, true
		return u, true, rec, err
	}
	u, tracked, err = tx.lockUsage(ctx)
	if err != nil {
		return Usage{}, false, Record{}, err
	}
	rec, err = tx.btx.Get(ctx, collection, id)
	return u, tracked, rec, err
}
