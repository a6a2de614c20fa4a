package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
)

var _ store.PurgeTx = (*tx)(nil)

// sqlPurge deletes the tenant's ($1) oldest records of collection $2
// stamped before $3, at most $4, and returns how many it deleted and the
// sum of their stored lengths as tenant_usage counts them. It reads the
// plaintext columns only. Like every statement of a tenant transaction it
// runs sealed for the tenant, so row-level security confines it as well.
//
// The victims are chosen once, in a CTE (one that locks rows is always
// evaluated once): as "id IN (SELECT … LIMIT … FOR UPDATE)" PostgreSQL may
// rescan the subquery for each row of the DELETE, and each rescan skips
// the rows the DELETE already removed and returns the next ones, so the
// LIMIT would not bound it.
const sqlPurge = `WITH o AS (SELECT id FROM records WHERE tenant_id = $1 AND collection = $2 AND updated_at < $3
		ORDER BY updated_at, id LIMIT $4 FOR UPDATE),
	d AS (DELETE FROM records r USING o WHERE r.tenant_id = $1 AND r.collection = $2 AND r.id = o.id
		RETURNING ` + usageSizeRData + ` AS n)
	SELECT count(*), coalesce(sum(n), 0)::bigint FROM d`

// Purge implements store.PurgeTx.
func (t *tx) Purge(ctx context.Context, collection string, before time.Time, max int) (store.PurgeResult, error) {
	if !t.write {
		return store.PurgeResult{}, fmt.Errorf("postgres: purge records: read-only transaction")
	}
	br, err := t.send(ctx, sqlPurge, t.tenant, collection, before, int64(max))
	if err != nil {
		return store.PurgeResult{}, fmt.Errorf("postgres: purge records: %w", err)
	}
	var res store.PurgeResult
	err = br.QueryRow().Scan(&res.Records, &res.Bytes)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return store.PurgeResult{}, fmt.Errorf("postgres: purge records: %w", err)
	}
	return res, nil
}
