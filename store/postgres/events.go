package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var _ store.EventTx = (*tx)(nil)

// AppendEvents implements store.EventTx. The append is held back
// (deferWrite): it goes out in the batch of the transaction's next
// statement or of its COMMIT, one statement for the head and the events,
// so a write with events costs no more round trips than one without.
func (t *tx) AppendEvents(ctx context.Context, evs []store.Event) error {
	if !t.write {
		return errors.New("postgres: append events: read-only transaction")
	}
	if len(evs) == 0 {
		return nil
	}
	n := len(evs)
	cols, ids, ops, reasons := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	versions, ats, data := make([]int64, n), make([]time.Time, n), make([]*string, n)
	for i, ev := range evs {
		if !ev.Tenant.IsZero() && ev.Tenant != t.id {
			// The router fills Tenant with the transaction's; anything
			// else is a caller's mistake that must not land in this
			// tenant's outbox under another name.
			return fmt.Errorf("postgres: append events: %w: event of tenant %s in a transaction of %s", store.ErrTenantMismatch, ev.Tenant, t.tenant)
		}
		cols[i], ids[i], ops[i], reasons[i] = ev.Collection, ev.ID, string(ev.Op), ev.Reason
		versions[i], ats[i] = ev.Version, ev.At
		if ev.Data != nil {
			s := string(ev.Data) // a copy: the caller may reuse its buffer
			data[i] = &s
		}
	}
	return t.deferWrite(ctx, sqlEventsAppend, func(err error) error {
		return fmt.Errorf("postgres: append events: %w", err)
	}, t.tenant, int64(n), cols, ids, ops, versions, ats, reasons, data)
}

// Events implements store.EventTx: one statement, so the events, the
// oldest kept and the head come from one snapshot.
func (t *tx) Events(ctx context.Context, after int64, limit int, collections []string) ([]store.Event, int64, int64, error) {
	if collections == nil {
		collections = []string{}
	}
	br, err := t.send(ctx, sqlEvents, t.tenant, after, int64(limit), collections)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("postgres: read events: %w", err)
	}
	evs, oldest, head, err := scanEvents(br, t.id)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, 0, 0, fmt.Errorf("postgres: read events: %w", err)
	}
	return evs, oldest, head, nil
}

// scanEvents reads the rows of sqlEvents.
func scanEvents(br pgx.BatchResults, id tenant.ID) (evs []store.Event, oldest, head int64, err error) {
	rows, err := br.Query()
	if err != nil {
		return nil, 0, 0, err
	}
	defer rows.Close()
	var old *int64
	for rows.Next() {
		var (
			seq, version                *int64
			collection, rid, op, reason *string
			at                          *time.Time
			data                        []byte
		)
		if err := rows.Scan(&head, &old, &seq, &collection, &rid, &op, &version, &at, &reason, &data); err != nil {
			return nil, 0, 0, err
		}
		if seq == nil {
			continue // no event: the row carries only the head
		}
		ev := store.Event{Seq: *seq, Tenant: id, Collection: *collection, ID: *rid, Op: store.Op(*op),
			Version: *version, At: at.UTC(), Reason: *reason}
		if data != nil {
			ev.Data = json.RawMessage(data)
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, 0, err
	}
	oldest = head + 1
	if old != nil {
		oldest = *old
	}
	return evs, oldest, head, nil
}

// TrimEvents implements store.EventTx.
func (t *tx) TrimEvents(ctx context.Context, before time.Time, keep int, max int) (int64, error) {
	if !t.write {
		return 0, errors.New("postgres: trim events: read-only transaction")
	}
	br, err := t.send(ctx, sqlEventsTrim, t.tenant, before, int64(keep), int64(max))
	if err != nil {
		return 0, fmt.Errorf("postgres: trim events: %w", err)
	}
	var n int64
	err = br.QueryRow().Scan(&n)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: trim events: %w", err)
	}
	return n, nil
}

// EventOffset implements store.EventTx.
func (t *tx) EventOffset(ctx context.Context, consumer string) (int64, error) {
	if err := ownConsumer(consumer); err != nil {
		return 0, err
	}
	br, err := t.send(ctx, sqlEventOffset, t.tenant, consumer)
	if err != nil {
		return 0, fmt.Errorf("postgres: read event offset: %w", err)
	}
	var seq int64
	err = br.QueryRow().Scan(&seq)
	if cerr := br.Close(); err == nil || errors.Is(err, pgx.ErrNoRows) && cerr != nil {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: read event offset: %w", err)
	}
	return seq, nil
}

// SetEventOffset implements store.EventTx. The write is held back
// (deferWrite), like a record's.
func (t *tx) SetEventOffset(ctx context.Context, consumer string, seq int64) error {
	if !t.write {
		return errors.New("postgres: save event offset: read-only transaction")
	}
	if err := ownConsumer(consumer); err != nil {
		return err
	}
	return t.deferWrite(ctx, sqlEventOffsetSet, func(err error) error {
		return fmt.Errorf("postgres: save event offset: %w", err)
	}, t.tenant, consumer, seq)
}

// ownConsumer refuses the reserved name of the head row (and any name
// like it), whatever the caller checked: a consumer must never move the
// counter the tenant's Seqs come from.
func ownConsumer(name string) error {
	if name == "" || strings.HasPrefix(name, "$") {
		return fmt.Errorf("postgres: %w %q: use 1 to 63 characters of a-z, 0-9 and _, starting with a letter", store.ErrInvalidConsumer, name)
	}
	return nil
}
