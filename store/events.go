package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Op is what a change did to a record.
type Op string

// The operations an Event reports.
const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Event is one committed change of one of a tenant's records, as the
// tenant's outbox holds it. Every record write and delete through a Tx
// appends one in the same transaction, so an event exists exactly when its
// change committed.
type Event struct {
	// Seq numbers the tenant's events 1, 2, 3, ... in commit order, with
	// no gaps: the outbox gives the next number inside the transaction,
	// under the lock every write of the tenant takes, so a transaction
	// that rolls back takes its numbers back with it. A tenant deleted and
	// created again starts at 1 again.
	Seq        int64     `json:"seq"`
	Tenant     tenant.ID `json:"tenant"`
	Collection string    `json:"collection"`
	ID         string    `json:"id"`
	Op         Op        `json:"op"`
	// Version is the record's version after the change; for a delete,
	// the version it had.
	Version int64 `json:"version"`
	// At is when the transaction made the change (the record's updated_at
	// for a write).
	At time.Time `json:"at"`
	// Reason says why a record went away without a request deleting it:
	// "retention" for a purge. Empty otherwise.
	Reason string `json:"reason,omitempty"`
	// Data is the record's data after a write, only for tenants whose
	// events carry data (Config.EventData); the outbox stores it sealed
	// like the record. Never set on a delete.
	Data json.RawMessage `json:"data,omitempty"`
	// DataUnavailable: the event was stored with data that can no longer
	// be opened, because the keys it was sealed with have been destroyed
	// since (a key rotation finished, or the tenant was shredded) or the
	// stored envelope does not belong to this event. Data is then nil; the
	// record itself, re-sealed by the rotation, still reads.
	DataUnavailable bool `json:"data_unavailable,omitempty"`
}

// MaxEventPage bounds the events one Tx.Events call returns.
const MaxEventPage = 1000

// ErrEventsExpired: the events after the position a reader asked for have
// been trimmed from the outbox (by age or count), so reading on would skip
// some. The reader must start over from a fresh copy of the data.
var ErrEventsExpired = errors.New("events after this position have been trimmed from the outbox")

// ErrEventPosition: the position lies after the tenant's last event (it
// was made for another incarnation of the tenant, one deleted and created
// again with the same id).
var ErrEventPosition = errors.New("event position is after the tenant's last event")

// ErrEventsUnsupported: the backend keeps no outbox (its BackendTx does not
// implement EventTx), or the router was made with Config.NoEvents.
var ErrEventsUnsupported = errors.New("backend keeps no event outbox")

// EventTx is an optional capability of a BackendTx: the tenant's
// transactional outbox, in the same database as its records. Every
// statement is confined to the transaction's tenant, like the record
// statements. store/storetest checks it for every backend and mode.
type EventTx interface {
	// AppendEvents appends evs to the tenant's outbox in this
	// transaction. Their Seq fields are ignored: the backend numbers them
	// after the tenant's last event, in order, with a counter kept in the
	// transaction (never lower than a number once given, even when every
	// event has been trimmed). The Router calls it only after locking the
	// tenant's usage (UsageTx), which orders the tenant's writers. Data,
	// when set, is as stored (sealed where the router seals).
	AppendEvents(ctx context.Context, evs []Event) error
	// Events returns the tenant's events with Seq > after, in Seq order,
	// at most limit of them, only of collections when collections is not
	// empty. It also returns oldest, the lowest Seq the outbox still
	// holds for the tenant (head+1 when it holds none), and head, the
	// last Seq ever given (0 if none), as of the same snapshot.
	Events(ctx context.Context, after int64, limit int, collections []string) (evs []Event, oldest, head int64, err error)
	// TrimEvents deletes at most max of the tenant's events that are
	// older (At) than before or beyond the newest keep events, oldest
	// first, and returns how many it deleted. keep 0 keeps no minimum.
	TrimEvents(ctx context.Context, before time.Time, keep int, max int) (int64, error)
	// EventOffset returns the position (a Seq) consumer last saved for
	// the tenant, 0 if none.
	EventOffset(ctx context.Context, consumer string) (int64, error)
	// SetEventOffset saves consumer's position for the tenant.
	SetEventOffset(ctx context.Context, consumer string, seq int64) error
}

// EventData says which tenants' events carry their records' data. The
// catalog implements it from the tenant's settings; it is asked inside
// every write transaction, so it should be cheap (cached).
type EventData interface {
	EventData(ctx context.Context, id tenant.ID) (bool, error)
}

// events returns the backend's outbox, or nil if the router makes no events.
func (tx *Tx) events() EventTx {
	if tx.r.noEvents {
		return nil
	}
	et, _ := tx.btx.(EventTx)
	return et
}

// appendEvent appends the event of a write (rec holds the data as stored)
// or, with rec.Data nil, of a delete.
func (tx *Tx) appendEvent(ctx context.Context, op Op, rec Record) error {
	et := tx.events()
	if et == nil {
		return nil
	}
	ev := Event{Tenant: tx.tenant, Collection: rec.Collection, ID: rec.ID, Op: op, Version: rec.Version, At: rec.UpdatedAt}
	if op != OpDelete && tx.r.eventData != nil {
		with, err := tx.r.eventData.EventData(ctx, tx.tenant)
		if err != nil {
			return fmt.Errorf("event data setting: %w", err)
		}
		if with {
			ev.Data = rec.Data
		}
	}
	if err := et.AppendEvents(ctx, []Event{ev}); err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	tx.appended = true
	return nil
}

// Events returns one page of the tenant's events after position after (a
// Seq; 0 for the beginning), at most limit (1 to MaxEventPage), only of
// collections if any are given, with their data opened (see Event.Data).
// head is the tenant's last Seq as of this transaction: a reader that got
// fewer than limit events has seen everything up to head. It fails with
// ErrEventsExpired if events after after were trimmed, ErrEventPosition if
// after lies beyond head, ErrEventsUnsupported on a backend without an
// outbox.
func (tx *Tx) Events(ctx context.Context, after int64, limit int, collections []string) (evs []Event, head int64, err error) {
	if err := tx.check(ctx); err != nil {
		return nil, 0, err
	}
	et := tx.events()
	if et == nil {
		return nil, 0, fmt.Errorf("%w (%T)", ErrEventsUnsupported, tx.btx)
	}
	if limit < 1 || limit > MaxEventPage {
		return nil, 0, fmt.Errorf("%w: an event page holds 1 to %d events, not %d", ErrInvalidLimit, MaxEventPage, limit)
	}
	if after < 0 {
		return nil, 0, fmt.Errorf("%w: %d", ErrEventPosition, after)
	}
	for _, c := range collections {
		if err := ValidCollection(c); err != nil {
			return nil, 0, err
		}
	}
	if len(collections) > 1 {
		collections = slices.Compact(slices.Sorted(slices.Values(collections)))
	}
	evs, oldest, head, err := et.Events(ctx, after, limit, collections)
	if err != nil {
		return nil, 0, err
	}
	if after > head {
		return nil, 0, fmt.Errorf("%w: position %d, last event %d", ErrEventPosition, after, head)
	}
	if after+1 < oldest {
		return nil, 0, fmt.Errorf("%w: position %d, oldest event kept %d", ErrEventsExpired, after, oldest)
	}
	for i := range evs {
		if evs[i].Data == nil {
			continue
		}
		rec, err := tx.open(Record{Collection: evs[i].Collection, ID: evs[i].ID, Data: evs[i].Data})
		switch {
		case errors.Is(err, ErrSealed):
			evs[i].Data, evs[i].DataUnavailable = nil, true
		case err != nil:
			return nil, 0, fmt.Errorf("event %d: %w", evs[i].Seq, err)
		default:
			evs[i].Data = rec.Data
		}
	}
	if evs == nil {
		evs = []Event{}
	}
	return evs, head, nil
}

// TrimEvents deletes at most max of the tenant's events older than before
// or beyond its newest keep, oldest first, and returns how many.
func (tx *Tx) TrimEvents(ctx context.Context, before time.Time, keep, max int) (int64, error) {
	if err := tx.checkWrite(ctx); err != nil {
		return 0, err
	}
	et := tx.events()
	if et == nil {
		return 0, fmt.Errorf("%w (%T)", ErrEventsUnsupported, tx.btx)
	}
	if keep < 0 || max < 1 {
		return 0, fmt.Errorf("%w: keep %d, max %d", ErrInvalidLimit, keep, max)
	}
	return et.TrimEvents(ctx, before, keep, max)
}

// EventOffset returns the position consumer last saved for the tenant (0
// if none): a consumer that handles the tenant's events saves its position
// in the tenant's own database, in the same transaction as its work if it
// likes.
func (tx *Tx) EventOffset(ctx context.Context, consumer string) (int64, error) {
	if err := tx.check(ctx); err != nil {
		return 0, err
	}
	et := tx.events()
	if et == nil {
		return 0, fmt.Errorf("%w (%T)", ErrEventsUnsupported, tx.btx)
	}
	if err := validConsumer(consumer); err != nil {
		return 0, err
	}
	return et.EventOffset(ctx, consumer)
}

// SetEventOffset saves consumer's position for the tenant.
func (tx *Tx) SetEventOffset(ctx context.Context, consumer string, seq int64) error {
	if err := tx.checkWrite(ctx); err != nil {
		return err
	}
	et := tx.events()
	if et == nil {
		return fmt.Errorf("%w (%T)", ErrEventsUnsupported, tx.btx)
	}
	if err := validConsumer(consumer); err != nil {
		return err
	}
	if seq < 0 {
		return fmt.Errorf("%w: %d", ErrEventPosition, seq)
	}
	return et.SetEventOffset(ctx, consumer, seq)
}

// ErrInvalidConsumer: an event consumer's name breaks the collection rule
// (^[a-z][a-z0-9_]{0,62}$).
var ErrInvalidConsumer = errors.New("invalid event consumer name")

func validConsumer(name string) error {
	if ValidCollection(name) != nil {
		return fmt.Errorf("%w %q: use 1 to 63 characters of a-z, 0-9 and _, starting with a letter", ErrInvalidConsumer, name)
	}
	return nil
}
