package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// ErrQuotaExceeded: a write would take the tenant over its record or byte
// quota. The error is a *QuotaError carrying the limit and the usage.
var ErrQuotaExceeded = errors.New("storage quota exceeded")

// ErrUsageUnsupported: the backend does not keep usage (it does not
// implement UsageTx).
var ErrUsageUnsupported = errors.New("backend does not track usage")

// Quotas gives a tenant's storage quotas. limits.Resolver implements it
// with the tenant's effective limits; a team may implement it over its own
// plans. The Router asks it inside every write transaction that adds
// records or bytes, so it should be cheap (cached).
type Quotas interface {
	// StorageQuota returns the most records and the most bytes of record
	// data tenant id may store; 0 is no quota.
	StorageQuota(ctx context.Context, id tenant.ID) (maxRecords, maxBytes int64, err error)
}

// Usage is what a tenant stores: its records, and the bytes of their data
// (compact JSON, as stored).
type Usage struct {
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
}

// QuotaError is the error of a write refused for its quota. It wraps
// ErrQuotaExceeded.
type QuotaError struct {
	// Resource is "records" or "bytes".
	Resource string
	// Limit is the quota of Resource.
	Limit int64
	// Usage is the tenant's usage before the refused write.
	Usage Usage
	// Requested is how much of Resource the write would have added.
	Requested int64
}

func (e *QuotaError) Error() string {
	used := e.Usage.Records
	if e.Resource == "bytes" {
		used = e.Usage.Bytes
	}
	return fmt.Sprintf("%v: %s quota is %d, %d used, the write needs %d more", ErrQuotaExceeded, e.Resource, e.Limit, used, e.Requested)
}

// Unwrap returns ErrQuotaExceeded.
func (e *QuotaError) Unwrap() error { return ErrQuotaExceeded }

// UsageTx is an optional capability of a BackendTx: the backend keeps one
// usage row per tenant in the same database as its records and updates it
// in the same transaction as each write, so quotas checked against it hold
// under concurrent writers. The Router uses it when a BackendTx has it.
type UsageTx interface {
	// LockUsage returns the tenant's usage and holds it against the
	// tenant's other writers until the transaction ends. A tenant without
	// a usage row gets one, counted from its records.
	LockUsage(ctx context.Context) (Usage, error)
	// AddUsage adds d to the tenant's usage row, which LockUsage made
	// sure exists earlier in the transaction.
	AddUsage(ctx context.Context, d Usage) error
	// Usage returns the tenant's usage without locking (read-only
	// transactions too); without a usage row it counts the records.
	Usage(ctx context.Context) (Usage, error)
}

// lockUsage locks the tenant's usage if the backend keeps it; ok is false
// if it does not.
func (tx *Tx) lockUsage(ctx context.Context) (u Usage, ok bool, err error) {
	ut, ok := tx.btx.(UsageTx)
	if !ok {
		return Usage{}, false, nil
	}
	u, err = ut.LockUsage(ctx)
	if err != nil {
		return Usage{}, false, fmt.Errorf("lock usage: %w", err)
	}
	tx.after, tx.afterKnown = u, true
	return u, true, nil
}

// admit checks that adding d to u stays within the tenant's quotas.
// Shrinking is always allowed, even over quota.
func (tx *Tx) admit(ctx context.Context, u, d Usage) error {
	if tx.r.quotas == nil || (d.Records <= 0 && d.Bytes <= 0) {
		return nil
	}
	maxRecords, maxBytes, err := tx.r.quotas.StorageQuota(ctx, tx.tenant)
	if err != nil {
		return fmt.Errorf("quota: %w", err)
	}
	if d.Records > 0 && maxRecords > 0 && u.Records+d.Records > maxRecords {
		return &QuotaError{Resource: "records", Limit: maxRecords, Usage: u, Requested: d.Records}
	}
	if d.Bytes > 0 && maxBytes > 0 && u.Bytes+d.Bytes > maxBytes {
		return &QuotaError{Resource: "bytes", Limit: maxBytes, Usage: u, Requested: d.Bytes}
	}
	return nil
}

func (tx *Tx) addUsage(ctx context.Context, d Usage) error {
	if d == (Usage{}) {
		return nil
	}
	if err := tx.btx.(UsageTx).AddUsage(ctx, d); err != nil {
		return fmt.Errorf("add usage: %w", err)
	}
	tx.after.Records += d.Records
	tx.after.Bytes += d.Bytes
	return nil
}

// UsageAfterWrites returns the tenant's usage as this transaction's writes
// leave it, without a query: the usage row its writes locked plus what
// they added. ok is false if the transaction wrote nothing or the backend
// keeps no usage. It describes the tenant once the transaction commits.
func (tx *Tx) UsageAfterWrites() (u Usage, ok bool) {
	return tx.after, tx.afterKnown
}

// Usage returns the tenant's usage as of this transaction, or
// ErrUsageUnsupported.
func (tx *Tx) Usage(ctx context.Context) (Usage, error) {
	if err := tx.check(ctx); err != nil {
		return Usage{}, err
	}
	ut, ok := tx.btx.(UsageTx)
	if !ok {
		return Usage{}, ErrUsageUnsupported
	}
	return ut.Usage(ctx)
}
