package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var _ store.EventTx = (*tx)(nil)

// The outbox of every file, pooled or per tenant: a tenant's events by
// sequence number, and the positions of its named consumers. The counter
// that numbers the events is the offsets row of the reserved consumer
// headConsumer (a name no valid consumer can have), so it survives
// trimming and rolls back with its transaction; the file's single writer
// orders the tenant's writers, so numbers follow commit order.
const (
	sqlEventsSchema = `CREATE TABLE IF NOT EXISTS tenant_events (
	tenant_id  TEXT    NOT NULL,
	seq        INTEGER NOT NULL,
	collection TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	op         TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	at         INTEGER NOT NULL,
	reason     TEXT    NOT NULL,
	data       TEXT,
	PRIMARY KEY (tenant_id, seq)
) STRICT, WITHOUT ROWID`
	sqlOffsetsSchema = `CREATE TABLE IF NOT EXISTS tenant_event_offsets (
	tenant_id TEXT    NOT NULL,
	consumer  TEXT    NOT NULL,
	seq       INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, consumer)
) STRICT, WITHOUT ROWID`
)

// headConsumer names the offsets row that holds a tenant's last event number.
const headConsumer = "$head"

// Outbox statements; each binds the transaction's tenant as ?1.
const (
	sqlEventsBump = `INSERT INTO tenant_event_offsets (tenant_id, consumer, seq) VALUES (?1, '` + headConsumer + `', ?2)
		ON CONFLICT (tenant_id, consumer) DO UPDATE SET seq = seq + excluded.seq RETURNING seq`
	sqlEventInsert = `INSERT INTO tenant_events (tenant_id, seq, collection, id, op, version, at, reason, data)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)`
	// sqlEventsRead packs an event into one text, its fields separated by
	// char(31), the unit separator, which no number, collection name, op,
	// reason or record id holds; the data, if any, comes last, whatever
	// it holds (concat_ws leaves out a NULL). The driver takes a lock and
	// allocates for every column of every row, and the relay reads events
	// by the thousand.
	sqlEventsRead = `SELECT concat_ws(char(31), seq, version, at, collection, op, reason, id, data)
		FROM tenant_events
		WHERE tenant_id = ?1 AND seq > ?2 AND (?4 IS NULL OR collection IN (SELECT value FROM json_each(?4)))
		ORDER BY seq LIMIT ?3`
	sqlEventsRange = `SELECT coalesce((SELECT seq FROM tenant_event_offsets WHERE tenant_id = ?1 AND consumer = '` + headConsumer + `'), 0),
		(SELECT min(seq) FROM tenant_events WHERE tenant_id = ?1)`
	// sqlEventsAgeCut is the last event number of the tenant's prefix
	// of events stamped before ?2: one less than the first event stamped
	// at or after it, or NULL when there is none.
	sqlEventsAgeCut = `SELECT min(seq) - 1 FROM tenant_events WHERE tenant_id = ?1 AND at >= ?2`
	sqlEventsTrim   = `DELETE FROM tenant_events WHERE tenant_id = ?1 AND seq IN (
		SELECT seq FROM tenant_events WHERE tenant_id = ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3)`
	sqlOffsetGet = `SELECT seq FROM tenant_event_offsets WHERE tenant_id = ?1 AND consumer = ?2`
	sqlOffsetSet = `INSERT INTO tenant_event_offsets (tenant_id, consumer, seq) VALUES (?1, ?2, ?3)
		ON CONFLICT (tenant_id, consumer) DO UPDATE SET seq = excluded.seq`
	sqlDropEvents  = `DELETE FROM tenant_events WHERE tenant_id = ?1`
	sqlDropOffsets = `DELETE FROM tenant_event_offsets WHERE tenant_id = ?1`
)

// noOutbox reports an error from a file made before the outbox existed.
func noOutbox(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "no such table: tenant_events") ||
		strings.Contains(err.Error(), "no such table: tenant_event_offsets"))
}

// withOutbox runs fn; in a write transaction on a file made before the
// outbox existed, it creates the outbox's tables there and runs fn again.
func (t *tx) withOutbox(ctx context.Context, fn func() error) error {
	err := fn()
	if !noOutbox(err) || !t.write {
		return err
	}
	for _, q := range []string{sqlEventsSchema, sqlOffsetsSchema} {
		if _, err := t.tx.ExecContext(own(ctx), q); err != nil {
			return err
		}
	}
	return fn()
}

// AppendEvents implements store.EventTx.
func (t *tx) AppendEvents(ctx context.Context, evs []store.Event) error {
	if !t.write {
		return errReadOnly
	}
	if len(evs) == 0 {
		return nil
	}
	err := t.withOutbox(ctx, func() error {
		var head int64
		if err := t.tx.QueryRowContext(own(ctx), sqlEventsBump, t.tenant, len(evs)).Scan(&head); err != nil {
			return err
		}
		seq := head - int64(len(evs))
		for _, ev := range evs {
			seq++
			var data any
			if ev.Data != nil {
				data = string(ev.Data)
			}
			if _, err := t.tx.ExecContext(own(ctx), sqlEventInsert, t.tenant, seq, ev.Collection, ev.ID,
				string(ev.Op), ev.Version, micros(ev.At), ev.Reason, data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: append events: %w", err)
	}
	return nil
}

// Events implements store.EventTx.
func (t *tx) Events(ctx context.Context, after int64, limit int, collections []string) (evs []store.Event, oldest, head int64, err error) {
	var oldestSeq sql.NullInt64
	err = t.tx.QueryRowContext(own(ctx), sqlEventsRange, t.tenant).Scan(&head, &oldestSeq)
	if noOutbox(err) {
		return nil, 1, 0, nil // a file made before the outbox: no event yet
	}
	if err != nil {
		return nil, 0, 0, fmt.Errorf("sqlite: read events: %w", err)
	}
	oldest = head + 1
	if oldestSeq.Valid {
		oldest = oldestSeq.Int64
	}
	var colls any
	if len(collections) > 0 {
		b, _ := json.Marshal(collections)
		colls = string(b)
	}
	rows, err := t.tx.QueryContext(own(ctx), sqlEventsRead, t.tenant, after, limit, colls)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("sqlite: read events: %w", err)
	}
	defer rows.Close()
	id, err := tenant.Parse(t.tenant)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("sqlite: read events: %w", err)
	}
	evs = make([]store.Event, 0, max(0, min(int64(limit), head-after)))
	var in interner  // a page's collections, ops and reasons repeat
	var arena []byte // the page's data, back to back
	for rows.Next() {
		var packed string
		if err := rows.Scan(&packed); err != nil {
			return nil, 0, 0, fmt.Errorf("sqlite: read events: %w", err)
		}
		ev, data, err := unpackEvent(packed, &in)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("sqlite: read events after %d: %w", after, err)
		}
		ev.Tenant = id
		if data != "" {
			if cap(arena)-len(arena) < len(data) {
				// Room for the rows still expected if they are alike, up to
				// 32 KiB: one event's data does not take a large block.
				arena = make([]byte, 0, max(len(data), min(32<<10, len(data)*(cap(evs)-len(evs)))))
			}
			start := len(arena)
			arena = append(arena, data...)
			ev.Data = json.RawMessage(arena[start:len(arena):len(arena)])
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, 0, fmt.Errorf("sqlite: read events: %w", err)
	}
	return evs, oldest, head, nil
}

// TrimEvents implements store.EventTx. It deletes a prefix of the tenant's
// events (never one in the middle, so a reader can tell what it missed):
// those up to the last stamped before before, or beyond the newest keep.
func (t *tx) TrimEvents(ctx context.Context, before time.Time, keep, limit int) (int64, error) {
	if !t.write {
		return 0, errReadOnly
	}
	var head int64
	var oldest, ageCut sql.NullInt64
	err := t.tx.QueryRowContext(own(ctx), sqlEventsRange, t.tenant).Scan(&head, &oldest)
	if noOutbox(err) {
		return 0, nil
	}
	if err == nil {
		err = t.tx.QueryRowContext(own(ctx), sqlEventsAgeCut, t.tenant, micros(before)).Scan(&ageCut)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: trim events: %w", err)
	}
	cut := head // no event stamped at or after before: all are older
	if ageCut.Valid {
		cut = ageCut.Int64
	}
	if keep > 0 {
		cut = max(cut, head-int64(keep))
	}
	if cut < 1 || !oldest.Valid {
		return 0, nil
	}
	res, err := t.tx.ExecContext(own(ctx), sqlEventsTrim, t.tenant, cut, limit)
	if err != nil {
		return 0, fmt.Errorf("sqlite: trim events: %w", err)
	}
	return res.RowsAffected()
}

// EventOffset implements store.EventTx.
func (t *tx) EventOffset(ctx context.Context, consumer string) (int64, error) {
	var seq int64
	err := t.tx.QueryRowContext(own(ctx), sqlOffsetGet, t.tenant, consumer).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) || noOutbox(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: read event offset: %w", err)
	}
	return seq, nil
}

// SetEventOffset implements store.EventTx.
func (t *tx) SetEventOffset(ctx context.Context, consumer string, seq int64) error {
	if !t.write {
		return errReadOnly
	}
	err := t.withOutbox(ctx, func() error {
		_, err := t.tx.ExecContext(own(ctx), sqlOffsetSet, t.tenant, consumer, seq)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: save event offset: %w", err)
	}
	return nil
}

// unpackEvent splits one row of sqlEventsRead; data is "" when the event
// has none. The record id is a slice of packed.
func unpackEvent(packed string, in *interner) (ev store.Event, data string, err error) {
	var f [7]string // seq, version, at, collection, op, reason, id
	rest := packed
	for i := range f {
		var ok bool
		if f[i], rest, ok = strings.Cut(rest, "\x1f"); !ok && i < len(f)-1 {
			return ev, "", errors.New("a malformed event")
		}
	}
	seq, err1 := strconv.ParseInt(f[0], 10, 64)
	version, err2 := strconv.ParseInt(f[1], 10, 64)
	at, err3 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || f[6] == "" {
		return ev, "", errors.New("a malformed event")
	}
	ev = store.Event{Seq: seq, Version: version, At: fromMicros(at), Collection: in.get(f[3]),
		Op: store.Op(in.get(f[4])), Reason: in.get(f[5]), ID: f[6]}
	return ev, rest, nil
}

// interner returns one string for equal bytes: a page of events holds a
// few collection names, ops and reasons many times over.
type interner map[string]string

func (in *interner) get(b string) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := (*in)[b]; ok {
		return s
	}
	if *in == nil {
		*in = make(interner, 4)
	}
	s := strings.Clone(b) // not a slice of the row's packed text
	(*in)[s] = s
	return s
}
