package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrPurgeUnsupported: the backend cannot purge records by age (its
// BackendTx does not implement PurgeTx).
var ErrPurgeUnsupported = errors.New("backend cannot purge records by age")

// MaxPurge bounds the records one Tx.Purge deletes, so that one purge is
// one bounded transaction; a caller with more to delete purges again.
const MaxPurge = 10000

// PurgeResult is what a purge deleted: the records, and the bytes of their
// data as the tenant's usage counts them.
type PurgeResult struct {
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
	// Deleted names the records deleted, with the versions they had, for
	// their events (a backend with an outbox, EventTx, must fill it).
	Deleted []RecordRef `json:"-"`
}

// RecordRef names one version of a record.
type RecordRef struct {
	Collection string
	ID         string
	Version    int64
}

// PurgeTx is an optional capability of a BackendTx: deleting a tenant's
// oldest records of a collection in one statement. Retention (package
// retention) uses it through Tx.Purge. It reads only the plaintext columns
// (collection, id, updated_at) and the stored length of the data, never
// the data itself.
type PurgeTx interface {
	// Purge deletes at most max of the tenant's records of collection
	// whose updated_at is before before, the oldest first (by updated_at,
	// then id), and returns how many it deleted and the sum of their stored
	// data lengths, in the unit UsageTx counts bytes in.
	Purge(ctx context.Context, collection string, before time.Time, max int) (PurgeResult, error)
}

// Purge deletes at most max (1 to MaxPurge) of the tenant's records of
// collection last written (updated_at) before before, the oldest first,
// and returns what it deleted. On a backend that keeps usage (UsageTx) it
// locks the tenant's usage first, like every write, and takes the deleted
// records and bytes off it in the same transaction, from the counts the
// backend returns. A purge that deletes nothing changes nothing. It fails
// with an error wrapping ErrPurgeUnsupported on a backend without PurgeTx,
// ErrInvalidCollection or ErrInvalidLimit for bad input.
func (tx *Tx) Purge(ctx context.Context, collection string, before time.Time, max int) (PurgeResult, error) {
	if err := tx.checkWrite(ctx); err != nil {
		return PurgeResult{}, err
	}
	if err := ValidCollection(collection); err != nil {
		return PurgeResult{}, err
	}
	if max < 1 || max > MaxPurge {
		return PurgeResult{}, fmt.Errorf("%w: a purge deletes 1 to %d records, not %d", ErrInvalidLimit, MaxPurge, max)
	}
	pt, ok := tx.btx.(PurgeTx)
	if !ok {
		return PurgeResult{}, fmt.Errorf("%w (%T)", ErrPurgeUnsupported, tx.btx)
	}
	_, tracked, err := tx.lockUsage(ctx)
	if err != nil {
		return PurgeResult{}, err
	}
	res, err := pt.Purge(ctx, collection, ceilMicro(before), max)
	if err != nil {
		return PurgeResult{}, err
	}
	if err := tx.appendPurged(ctx, res); err != nil {
		return PurgeResult{}, err
	}
	if tracked {
		if err := tx.addUsage(ctx, Usage{Records: -res.Records, Bytes: -res.Bytes}); err != nil {
			return PurgeResult{}, err
		}
	}
	return res, nil
}

// ceilMicro rounds t up to the microsecond, the precision records are
// stamped with: a record stamped at 10µs is before 10.5µs, and so before
// 11µs, but not before 10µs.
func ceilMicro(t time.Time) time.Time {
	c := t.UTC().Truncate(time.Microsecond)
	if c.Before(t) {
		c = c.Add(time.Microsecond)
	}
	return c
}

// appendPurged appends a delete event, reason "retention", for each record
// a purge deleted.
func (tx *Tx) appendPurged(ctx context.Context, res PurgeResult) error {
	et := tx.events()
	if et == nil || res.Records == 0 {
		return nil
	}
	if int64(len(res.Deleted)) != res.Records {
		return fmt.Errorf("store: purge deleted %d records but named %d of them for their events (%T)", res.Records, len(res.Deleted), tx.btx)
	}
	now := tx.r.now().UTC().Truncate(1e3)
	evs := make([]Event, len(res.Deleted))
	for i, d := range res.Deleted {
		evs[i] = Event{Tenant: tx.tenant, Collection: d.Collection, ID: d.ID, Op: OpDelete, Version: d.Version, At: now, Reason: "retention"}
	}
	if err := et.AppendEvents(ctx, evs); err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	tx.appended = true
	return nil
}
