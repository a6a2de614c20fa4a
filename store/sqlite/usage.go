package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/bulkhead-dev/bulkhead/store"
)

var _ store.UsageTx = (*tx)(nil)

// sqlUsageSchema holds one usage row per tenant in the same file as its
// records. The file's single writer serializes every write transaction, so
// reading the row in a write transaction is already a lock.
const sqlUsageSchema = `CREATE TABLE IF NOT EXISTS tenant_usage (
	tenant_id TEXT    NOT NULL PRIMARY KEY,
	records   INTEGER NOT NULL,
	bytes     INTEGER NOT NULL
) STRICT, WITHOUT ROWID`

// Usage statements; each binds the transaction's tenant as ?1.
const (
	sqlUsageGet   = `SELECT records, bytes FROM tenant_usage WHERE tenant_id = ?1`
	sqlUsageCount = `SELECT count(*), coalesce(sum(` + usageSize + `), 0) FROM records WHERE tenant_id = ?1`
	sqlUsageInit  = `INSERT INTO tenant_usage (tenant_id, records, bytes)
		SELECT ?1, count(*), coalesce(sum(` + usageSize + `), 0) FROM records WHERE tenant_id = ?1
		ON CONFLICT (tenant_id) DO NOTHING`
	sqlUsageAdd  = `UPDATE tenant_usage SET records = records + ?2, bytes = bytes + ?3 WHERE tenant_id = ?1`
	sqlDropUsage = `DELETE FROM tenant_usage WHERE tenant_id = ?1`
)

func (t *tx) readUsage(ctx context.Context, q string) (store.Usage, error) {
	var u store.Usage
	err := t.tx.QueryRowContext(own(ctx), q, t.tenant).Scan(&u.Records, &u.Bytes)
	return u, err
}

// LockUsage implements store.UsageTx.
func (t *tx) LockUsage(ctx context.Context) (store.Usage, error) {
	if !t.write {
		return store.Usage{}, errReadOnly
	}
	u, err := t.readUsage(ctx, sqlUsageGet)
	if err != nil && strings.Contains(err.Error(), "no such table: tenant_usage") {
		// A tenant file made before usage was kept: add the table here,
		// in the write transaction, and count the records below.
		if _, err = t.tx.ExecContext(own(ctx), sqlUsageSchema); err == nil {
			err = sql.ErrNoRows
		}
	}
	if errors.Is(err, sql.ErrNoRows) {
		if _, err = t.tx.ExecContext(own(ctx), sqlUsageInit, t.tenant); err == nil {
			u, err = t.readUsage(ctx, sqlUsageGet)
		}
	}
	if err != nil {
		return store.Usage{}, fmt.Errorf("sqlite: usage: %w", err)
	}
	return u, nil
}

// AddUsage implements store.UsageTx.
func (t *tx) AddUsage(ctx context.Context, d store.Usage) error {
	if !t.write {
		return errReadOnly
	}
	res, err := t.tx.ExecContext(own(ctx), sqlUsageAdd, t.tenant, d.Records, d.Bytes)
	if err != nil {
		return fmt.Errorf("sqlite: usage: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: usage: %w", err)
	} else if n != 1 {
		return fmt.Errorf("sqlite: usage row of %s missing (LockUsage first)", t.tenant)
	}
	return nil
}

// Usage implements store.UsageTx.
func (t *tx) Usage(ctx context.Context) (store.Usage, error) {
	u, err := t.readUsage(ctx, sqlUsageGet)
	if errors.Is(err, sql.ErrNoRows) || err != nil && strings.Contains(err.Error(), "no such table: tenant_usage") {
		u, err = t.readUsage(ctx, sqlUsageCount)
	}
	if err != nil {
		return store.Usage{}, fmt.Errorf("sqlite: usage: %w", err)
	}
	return u, nil
}

// usageSize is the SQL for the bytes usage counts for a record: the
// length of its data as stored, or, for a sealed record's envelope
// (store/seal.go, always written with its marker first), the length in the
// clear it carries in "n".
const usageSize = `CASE WHEN substr(data, 1, 11) = '{"$sealed":' THEN coalesce(json_extract(data, '$.n'), 0) ELSE length(CAST(data AS BLOB)) END`
