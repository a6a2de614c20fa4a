package catalog

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Event settings.
//
// A tenant's settings for its change events live in the table
// tenant_events, one row per tenant, stamped with when they were set
// (set_at). Like retention rules they belong to the tenant's incarnation:
// a row set before the tenant was created (left by an earlier tenant with
// the id) is ignored, and Offboard removes the row with the tenant. They
// are read on the request path (EventData, asked in every write
// transaction) from the tenant cache, which every change invalidates.

// ErrInvalidEventSettings: a change to a tenant's event settings is not
// an object {"data": true|false}.
var ErrInvalidEventSettings = errors.New("invalid event settings")

// EventSettings are a tenant's settings for its change events.
type EventSettings struct {
	// Data: the tenant's events carry the record's data after each write
	// (sealed in the outbox like the record when encryption is on). Off by
	// default: an event then says what changed, not to what.
	Data bool `json:"data"`
}

var _ store.EventData = (*Catalog)(nil)

// ParseEventSettings parses a change to a tenant's event settings, the
// JSON object {"data": true|false}. Anything else (another field, a
// missing or non-boolean "data", trailing data) is an error wrapping
// ErrInvalidEventSettings.
func ParseEventSettings(b []byte) (EventSettings, error) {
	bad := fmt.Errorf(`%w: want {"data": true} (events carry the record's data) or {"data": false}`, ErrInvalidEventSettings)
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil || dec.More() || len(raw) != 1 {
		return EventSettings{}, bad
	}
	switch string(bytes.TrimSpace(raw["data"])) { // the name exactly: not "Data"
	case "true":
		return EventSettings{Data: true}, nil
	case "false":
		return EventSettings{}, nil
	}
	return EventSettings{}, bad
}

// EventSettings returns the tenant's event settings (uncached; the
// defaults if none were set), or ErrNotFound.
func (c *Catalog) EventSettings(ctx context.Context, id tenant.ID) (EventSettings, error) {
	var data sql.NullInt64
	err := c.queryRow(ctx, c.db, `SELECT e.data FROM tenants t
		LEFT JOIN tenant_events e ON e.tenant_id = t.id AND e.set_at >= t.created_at WHERE t.id = ?`, id.String()).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return EventSettings{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return EventSettings{}, fmt.Errorf("read event settings: %w", err)
	}
	return EventSettings{Data: data.Valid && data.Int64 != 0}, nil
}

// EventData implements store.EventData from the request-path cache: whether
// the tenant's events carry their records' data. A tenant that is not
// active or suspended yields an error wrapping store.ErrUnknownTenant, as
// Placement does (no write of it may commit).
func (c *Catalog) EventData(ctx context.Context, id tenant.ID) (bool, error) {
	e, err := c.tenantEntry(ctx, id)
	if err != nil {
		return false, err
	}
	if !e.found || (e.state != Active && e.state != Suspended) {
		return false, fmt.Errorf("%w: %s", store.ErrUnknownTenant, id)
	}
	return e.eventData, nil
}

// SetEventSettings replaces the tenant's event settings (see UpdateTenant).
func (c *Catalog) SetEventSettings(ctx context.Context, id tenant.ID, s EventSettings) error {
	_, err := c.UpdateTenant(ctx, id, TenantUpdate{Events: &s})
	return err
}

// writeEventSettings stores s as the tenant's settings in tx, stamped now
// (so they belong to the current incarnation).
func (c *Catalog) writeEventSettings(ctx context.Context, tx *sql.Tx, id tenant.ID, s EventSettings) error {
	data := int64(0)
	if s.Data {
		data = 1
	}
	if _, err := c.exec(ctx, tx, `INSERT INTO tenant_events (tenant_id, data, set_at) VALUES (?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET data = excluded.data, set_at = excluded.set_at`,
		id.String(), data, micros(c.now())); err != nil {
		return fmt.Errorf("set event settings: %w", err)
	}
	return nil
}
