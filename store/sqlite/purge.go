package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
)

var _ store.PurgeTx = (*tx)(nil)

// sqlPurge deletes the tenant's (?1) oldest records of collection ?2
// stamped before ?3 (microseconds), at most ?4, and returns each one's
// stored length as tenant_usage counts it. It reads the plaintext columns
// only.
const sqlPurge = `DELETE FROM records WHERE tenant_id = ?1 AND collection = ?2 AND id IN (
		SELECT id FROM records WHERE tenant_id = ?1 AND collection = ?2 AND updated_at < ?3
		ORDER BY updated_at, id LIMIT ?4)
	RETURNING collection, id, version, ` + usageSize

// Purge implements store.PurgeTx.
func (t *tx) Purge(ctx context.Context, collection string, before time.Time, max int) (store.PurgeResult, error) {
	if !t.write {
		return store.PurgeResult{}, errReadOnly
	}
	rows, err := t.tx.QueryContext(own(ctx), sqlPurge, t.tenant, collection, micros(before), max)
	if err != nil {
		return store.PurgeResult{}, fmt.Errorf("sqlite: purge records: %w", err)
	}
	defer rows.Close()
	var res store.PurgeResult
	for rows.Next() {
		var n int64
		var d store.RecordRef
		if err := rows.Scan(&d.Collection, &d.ID, &d.Version, &n); err != nil {
			return store.PurgeResult{}, fmt.Errorf("sqlite: purge records: %w", err)
		}
		res.Records++
		res.Bytes += n
		res.Deleted = append(res.Deleted, d)
	}
	if err := rows.Err(); err != nil {
		return store.PurgeResult{}, fmt.Errorf("sqlite: purge records: %w", err)
	}
	return res, nil
}
