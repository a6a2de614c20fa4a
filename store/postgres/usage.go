package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
)

var _ store.UsageTx = (*tx)(nil)

// usageDDL creates the tenant_usage table in schema s (already quoted): one
// row per tenant, in the same unit as its records. It has a tenant_id, so
// secure gives it row-level security and the tenant policies like records,
// and Drop deletes a pooled tenant's row with its records.
func usageDDL(s string) string {
	return `CREATE TABLE IF NOT EXISTS ` + s + `.tenant_usage (
	tenant_id text COLLATE "C" PRIMARY KEY CHECK (tenant_id <> ''),
	records   bigint NOT NULL,
	bytes     bigint NOT NULL
)`
}

// usageSizeData (and usageSizeRData, for alias r) is the SQL for the
// bytes usage counts for a record: data is json, stored byte for byte, so
// octet_length(col::text) is the length the store counted when it wrote
// the record; a sealed record's envelope (store/seal.go, always written
// with its marker first) carries the length in the clear in "n".
const (
	usageSizeData  = `CASE WHEN left(data::text, 11) = '{"$sealed":' THEN coalesce((data->>'n')::bigint, 0) ELSE octet_length(data::text) END`
	usageSizeRData = `CASE WHEN left(r.data::text, 11) = '{"$sealed":' THEN coalesce((r.data->>'n')::bigint, 0) ELSE octet_length(r.data::text) END`
)

// Usage statements; each binds the transaction's tenant as $1 (sizes:
// usageSizeData).
const (
	sqlUsageLock  = `SELECT records, bytes FROM tenant_usage WHERE tenant_id = $1 FOR UPDATE`
	sqlUsageGet   = `SELECT records, bytes FROM tenant_usage WHERE tenant_id = $1`
	sqlUsageCount = `SELECT count(*), coalesce(sum(` + usageSizeData + `), 0)::bigint FROM records WHERE tenant_id = $1`
	sqlUsageInit  = `INSERT INTO tenant_usage (tenant_id, records, bytes)
		SELECT $1, count(*), coalesce(sum(` + usageSizeData + `), 0) FROM records WHERE tenant_id = $1
		ON CONFLICT (tenant_id) DO NOTHING`
	// sqlUsageAdd fails with division_by_zero if the row is missing, so
	// that a held-back AddUsage (deferWrite) fails its batch.
	sqlUsageAdd = `WITH u AS (UPDATE tenant_usage SET records = records + $2, bytes = bytes + $3 WHERE tenant_id = $1 RETURNING 1)
		SELECT 1 / count(*) FROM u`
)

func (t *tx) readUsage(ctx context.Context, q string) (store.Usage, error) {
	var u store.Usage
	br, err := t.send(ctx, q, t.tenant)
	if err != nil {
		return u, err
	}
	err = br.QueryRow().Scan(&u.Records, &u.Bytes)
	if cerr := br.Close(); err == nil || errors.Is(err, pgx.ErrNoRows) && cerr != nil {
		err = cerr
	}
	return u, err
}

// LockUsage implements store.UsageTx: SELECT ... FOR UPDATE locks the
// tenant's usage row, so the tenant's writers queue on it until commit. A
// missing row is created first; a concurrent creator makes this INSERT
// wait and then do nothing, and the lock then reads its committed row.
func (t *tx) LockUsage(ctx context.Context) (store.Usage, error) {
	u, err := t.readUsage(ctx, sqlUsageLock)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err = t.exec(ctx, sqlUsageInit, t.tenant); err == nil {
			u, err = t.readUsage(ctx, sqlUsageLock)
		}
	}
	if err != nil {
		return store.Usage{}, fmt.Errorf("postgres: usage: %w", err)
	}
	return u, nil
}

// AddUsage implements store.UsageTx. The update is held back
// (deferWrite): it goes out with the transaction's next statement or its
// COMMIT, and a missing row fails that batch.
func (t *tx) AddUsage(ctx context.Context, d store.Usage) error {
	return t.deferWrite(ctx, sqlUsageAdd, func(err error) error {
		if isCode(err, "22012") { // division_by_zero: no row
			return fmt.Errorf("postgres: usage row of %s missing (LockUsage first)", t.tenant)
		}
		return fmt.Errorf("postgres: usage: %w", err)
	}, t.tenant, d.Records, d.Bytes)
}

// Usage implements store.UsageTx.
func (t *tx) Usage(ctx context.Context) (store.Usage, error) {
	u, err := t.readUsage(ctx, sqlUsageGet)
	if errors.Is(err, pgx.ErrNoRows) {
		u, err = t.readUsage(ctx, sqlUsageCount)
	}
	if err != nil {
		return store.Usage{}, fmt.Errorf("postgres: usage: %w", err)
	}
	return u, nil
}
