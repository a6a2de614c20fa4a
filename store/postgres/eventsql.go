package postgres

// The transactional outbox's tables and statements (events.go runs them).
//
// Each unit keeps its tenants' events beside their records: the pooled
// schema "bulkhead", each tenant schema, each tenant database's "bulkhead".
// Both tables have a tenant_id column leading their keys, so secure gives
// them row-level security, the sealed tenant policies and the serving
// role's grants exactly as it does records, Drop deletes a pooled tenant's
// rows with its records (and a schema or database unit drops them with the
// unit), and a unit provisioned by an earlier version gets them through
// ensureCurrent (unitTables) or Apply.

// headConsumer is the name of the offsets row that holds a tenant's last
// given Seq. A consumer name must match the collection rule
// (^[a-z][a-z0-9_]{0,62}$), so no consumer can read or move it.
const headConsumer = "$head"

// eventsDDL creates the tenant_events and tenant_event_offsets tables in
// schema s (already quoted). data is json, as in records, so sealed data
// reads back byte for byte; it is NULL for events without data.
func eventsDDL(s string) string {
	return `CREATE TABLE IF NOT EXISTS ` + s + `.tenant_events (
	tenant_id  text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
	seq        bigint      NOT NULL CHECK (seq > 0),
	collection text COLLATE "C" NOT NULL,
	id         text COLLATE "C" NOT NULL,
	op         text        NOT NULL CHECK (op IN ('create', 'update', 'delete')),
	version    bigint      NOT NULL,
	at         timestamptz NOT NULL,
	reason     text        NOT NULL DEFAULT '',
	data       json,
	PRIMARY KEY (tenant_id, seq)
);
CREATE TABLE IF NOT EXISTS ` + s + `.tenant_event_offsets (
	tenant_id text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
	consumer  text COLLATE "C" NOT NULL,
	seq       bigint NOT NULL CHECK (seq >= 0),
	PRIMARY KEY (tenant_id, consumer)
)`
}

// Outbox statements. Like the record statements they name their tables
// unqualified (qualify names them in schema "bulkhead"; search_path in a
// tenant schema) and bind the transaction's tenant as $1.
const (
	// sqlEventsAppend bumps the tenant's head by $2, the number of
	// events, and inserts them numbered after the old head in the order
	// of the arrays $3..$9 (collection, id, op, version, at, reason,
	// data as text or NULL): one statement, held back (deferWrite). The
	// head row is updated under its row lock, so the tenant's appenders
	// queue on it until commit (they already queue on the usage lock),
	// and a rollback takes the numbers back.
	sqlEventsAppend = `WITH h AS (INSERT INTO tenant_event_offsets AS o (tenant_id, consumer, seq) VALUES ($1, '` + headConsumer + `', $2)
		ON CONFLICT (tenant_id, consumer) DO UPDATE SET seq = o.seq + excluded.seq RETURNING o.seq)
	INSERT INTO tenant_events (tenant_id, seq, collection, id, op, version, at, reason, data)
	SELECT $1, h.seq - $2 + e.n, e.collection, e.id, e.op, e.version, e.at, e.reason, e.data::json
	FROM h CROSS JOIN unnest($3::text[], $4::text[], $5::text[], $6::bigint[], $7::timestamptz[], $8::text[], $9::text[])
		WITH ORDINALITY AS e (collection, id, op, version, at, reason, data, n)`

	// sqlEvents reads the tenant's head, its oldest kept Seq (NULL if
	// none) and the events after $2 (at most $3, of collections $4 unless
	// empty), in one statement and so one snapshot. It always returns a
	// row: with no event, one whose event columns are NULL.
	sqlEvents = `SELECT s.head, s.oldest, e.seq, e.collection, e.id, e.op, e.version, e.at, e.reason, e.data
	FROM (SELECT coalesce((SELECT seq FROM tenant_event_offsets WHERE tenant_id = $1 AND consumer = '` + headConsumer + `'), 0) AS head,
		(SELECT seq FROM tenant_events WHERE tenant_id = $1 ORDER BY seq LIMIT 1) AS oldest) s
	LEFT JOIN LATERAL (SELECT seq, collection, id, op, version, at, reason, data FROM tenant_events
		WHERE tenant_id = $1 AND seq > $2 AND (coalesce(cardinality($4::text[]), 0) = 0 OR collection = ANY ($4::text[]))
		ORDER BY seq LIMIT $3) e ON true
	ORDER BY e.seq`

	// sqlEventsTrim deletes the tenant's oldest events, at most $4: those
	// before the first event stamped at or after $2, and, if $3 > 0, those
	// beyond the newest $3. It deletes a prefix of the tenant's events in
	// Seq order, so the outbox never holds a gap that a reader would skip
	// unawares (two writers may stamp their events out of commit order).
	// The victims are chosen once, in a CTE that locks them (see
	// sqlPurge).
	sqlEventsTrim = `WITH h AS (SELECT coalesce((SELECT seq FROM tenant_event_offsets WHERE tenant_id = $1 AND consumer = '` + headConsumer + `'), 0) AS head),
		f AS (SELECT coalesce((SELECT seq FROM tenant_events WHERE tenant_id = $1 AND at >= $2 ORDER BY seq LIMIT 1), 9223372036854775807) AS young),
		o AS (SELECT t.seq FROM tenant_events t CROSS JOIN h CROSS JOIN f WHERE t.tenant_id = $1
			AND (t.seq < f.young OR $3::bigint > 0 AND t.seq <= h.head - $3::bigint)
			ORDER BY t.seq LIMIT $4 FOR UPDATE OF t),
		d AS (DELETE FROM tenant_events e USING o WHERE e.tenant_id = $1 AND e.seq = o.seq RETURNING 1)
	SELECT count(*) FROM d`

	sqlEventOffset    = `SELECT seq FROM tenant_event_offsets WHERE tenant_id = $1 AND consumer = $2`
	sqlEventOffsetSet = `INSERT INTO tenant_event_offsets AS o (tenant_id, consumer, seq) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id, consumer) DO UPDATE SET seq = excluded.seq`
)
