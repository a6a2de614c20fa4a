package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
)

var _ store.PurgeTx = (*tx)(nil)

// sqlPurge deletes the tenant's ($1) oldest records of collection $2
// stamped before $3, at most $4, and returns the id, version and stored
// length (as tenant_usage counts it) of each, oldest first, for the purge's
// events and usage. It reads the plaintext columns only. Like every
// statement of a tenant transaction it runs sealed for the tenant, so
// row-level security confines it as well.
//
// The victims are chosen once, in a CTE (one that locks rows is always
// evaluated once): as "id IN (SELECT … LIMIT … FOR UPDATE)" PostgreSQL may
// rescan the subquery for each row of the DELETE, and each rescan skips
// the rows the DELETE already removed and returns the next ones, so the
// LIMIT would not bound it.
const sqlPurge = `WITH o AS (SELECT id FROM records WHERE tenant_id = $1 AND collection = $2 AND updated_at < $3
		ORDER BY updated_at, id LIMIT $4 FOR UPDATE),
	d AS (DELETE FROM records r USING o WHERE r.tenant_id = $1 AND r.collection = $2 AND r.id = o.id
		RETURNING r.id, r.version, r.updated_at, ` + usageSizeRData + ` AS n)
	SELECT id, version, n FROM d ORDER BY updated_at, id`

// Purge implements store.PurgeTx. It names every record it deleted
// (PurgeResult.Deleted), for the purge's events.
func (t *tx) Purge(ctx context.Context, collection string, before time.Time, max int) (store.PurgeResult, error) {
	if !t.write {
		return store.PurgeResult{}, fmt.Errorf("postgres: purge records: read-only transaction")
	}
	br, err := t.send(ctx, sqlPurge, t.tenant, collection, before, int64(max))
	if err != nil {
		return store.PurgeResult{}, fmt.Errorf("postgres: purge records: %w", err)
	}
	res, err := scanPurged(br, collection)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return store.PurgeResult{}, fmt.Errorf("postgres: purge records: %w", err)
	}
	return res, nil
}

// scanPurged reads the rows of sqlPurge.
func scanPurged(br pgx.BatchResults, collection string) (store.PurgeResult, error) {
	rows, err := br.Query()
	if err != nil {
		return store.PurgeResult{}, err
	}
	defer rows.Close()
	var res store.PurgeResult
	for rows.Next() {
		ref := store.RecordRef{Collection: collection}
		var n int64
		if err := rows.Scan(&ref.ID, &ref.Version, &n); err != nil {
			return store.PurgeResult{}, err
		}
		res.Deleted = append(res.Deleted, ref)
		res.Bytes += n
	}
	res.Records = int64(len(res.Deleted))
	return res, rows.Err()
}
