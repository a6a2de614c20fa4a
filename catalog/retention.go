package catalog

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Retention rules.
//
// A tenant may have, per collection, a maximum age: its records of that
// collection last written (updated_at) longer ago are purged by the
// retention sweep (package retention). Rules live in the table
// tenant_retention, one row per tenant and collection, stamped with when
// they were set (set_at). A rule belongs to the tenant's incarnation: rows
// set before the tenant was created (left by an earlier tenant with the id)
// are ignored and removed at the next change, and Offboard removes a
// tenant's rows with the tenant.

// ErrInvalidRetention: a retention rule names an invalid collection or a
// duration that is not a Go duration of at least MinRetention, or a tenant
// would have more than MaxRetentionRules.
var ErrInvalidRetention = errors.New("invalid retention rule")

// Bounds of retention rules.
const (
	// MinRetention is the shortest maximum age a rule may set.
	MinRetention = time.Second
	// MaxRetentionRules bounds the rules of one tenant (one per collection).
	MaxRetentionRules = 100
)

// Retention maps collections to the maximum age of their records. As a
// change (TenantUpdate.Retention), a zero age removes the collection's
// rule and collections it does not name keep theirs. Its JSON form is
// {"<collection>": "<Go duration>"}.
type Retention map[string]time.Duration

// MarshalJSON writes each age as a Go duration string ("720h0m0s").
func (r Retention) MarshalJSON() ([]byte, error) {
	m := make(map[string]string, len(r))
	for c, d := range r {
		m[c] = d.String()
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads what MarshalJSON writes, as ParseRetention does.
func (r *Retention) UnmarshalJSON(b []byte) error {
	p, err := ParseRetention(b)
	if err != nil {
		return err
	}
	*r = p
	return nil
}

// ParseRetention parses a change to a tenant's rules, a JSON object
// {"<collection>": "<duration>"}: a Go duration (time.ParseDuration) of at
// least MinRetention sets the collection's rule, "" or null removes it.
// Anything else is an error wrapping ErrInvalidRetention.
func ParseRetention(b []byte) (Retention, error) {
	var raw map[string]*string
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil || raw == nil || dec.More() {
		return nil, fmt.Errorf(`%w: want an object of collection names to durations, e.g. {"events": "720h"}, with "" or null to remove a rule`, ErrInvalidRetention)
	}
	out := make(Retention, len(raw))
	for c, v := range raw {
		var d time.Duration
		if v != nil && *v != "" {
			var err error
			if d, err = time.ParseDuration(*v); err != nil {
				return nil, fmt.Errorf("%w: %s: %q is not a duration (use Go syntax, e.g. 720h, 90m, 30s)", ErrInvalidRetention, c, *v)
			}
			if d < MinRetention {
				return nil, fmt.Errorf("%w: %s: %s is shorter than %s", ErrInvalidRetention, c, d, MinRetention)
			}
		}
		out[c] = d
	}
	return out, out.validChange()
}

// validChange checks a change: valid collection names, ages of 0 (remove)
// or at least MinRetention, at most MaxRetentionRules entries.
func (r Retention) validChange() error {
	if len(r) > MaxRetentionRules {
		return fmt.Errorf("%w: %d rules, at most %d", ErrInvalidRetention, len(r), MaxRetentionRules)
	}
	for _, c := range slices.Sorted(maps.Keys(r)) {
		if err := store.ValidCollection(c); err != nil {
			return fmt.Errorf("%w: collection %q: %v", ErrInvalidRetention, c, err)
		}
		if d := r[c]; d != 0 && d < MinRetention {
			return fmt.Errorf("%w: %s: %s is shorter than %s (0 removes the rule)", ErrInvalidRetention, c, d, MinRetention)
		}
	}
	return nil
}

// RetentionRule is one collection's rule of one tenant.
type RetentionRule struct {
	Tenant     tenant.ID
	Collection string
	MaxAge     time.Duration
}

// Retention returns the tenant's rules (uncached; empty if none), or
// ErrNotFound.
func (c *Catalog) Retention(ctx context.Context, id tenant.ID) (Retention, error) {
	if _, err := c.Tenant(ctx, id); err != nil {
		return nil, err
	}
	rules, err := c.retentionRules(ctx, `AND t.id = ?`, id.String())
	if err != nil {
		return nil, err
	}
	out := Retention{}
	for _, r := range rules {
		out[r.Collection] = r.MaxAge
	}
	return out, nil
}

// RetentionRules returns the rules of every active or suspended tenant,
// by tenant and collection (uncached): what the retention sweep enforces.
func (c *Catalog) RetentionRules(ctx context.Context) ([]RetentionRule, error) {
	return c.retentionRules(ctx, "")
}

// retentionRules reads the current incarnations' rules of active and
// suspended tenants, with an extra condition on t.
func (c *Catalog) retentionRules(ctx context.Context, cond string, args ...any) ([]RetentionRule, error) {
	rows, err := c.query(ctx, c.db, `SELECT r.tenant_id, r.collection, r.max_age FROM tenant_retention r
		JOIN tenants t ON t.id = r.tenant_id
		WHERE r.set_at >= t.created_at AND t.state IN (?, ?) `+cond+`
		ORDER BY r.tenant_id, r.collection`, append([]any{string(Active), string(Suspended)}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("read retention rules: %w", err)
	}
	defer rows.Close()
	var out []RetentionRule
	for rows.Next() {
		var id string
		var r RetentionRule
		var age int64
		if err := rows.Scan(&id, &r.Collection, &age); err != nil {
			return nil, fmt.Errorf("read retention rules: %w", err)
		}
		if r.Tenant, err = tenant.Parse(id); err != nil {
			return nil, fmt.Errorf("catalog holds an invalid tenant id: %w", err)
		}
		r.MaxAge = time.Duration(age)
		out = append(out, r)
	}
	return out, rows.Err()
}

// writeRetention applies change r to the tenant's rules in tx (r must be
// valid): rows of earlier incarnations go first, then each rule is set or
// removed; more than MaxRetentionRules in the end fails with
// ErrInvalidRetention and the caller's transaction rolls back.
func (c *Catalog) writeRetention(ctx context.Context, tx *sql.Tx, id tenant.ID, r Retention) error {
	now := micros(c.now())
	if _, err := c.exec(ctx, tx, `DELETE FROM tenant_retention WHERE tenant_id = ?
		AND set_at < (SELECT created_at FROM tenants WHERE id = ?)`, id.String(), id.String()); err != nil {
		return fmt.Errorf("set retention: %w", err)
	}
	for _, coll := range slices.Sorted(maps.Keys(r)) {
		var err error
		if d := r[coll]; d == 0 {
			_, err = c.exec(ctx, tx, `DELETE FROM tenant_retention WHERE tenant_id = ? AND collection = ?`, id.String(), coll)
		} else {
			_, err = c.exec(ctx, tx, `INSERT INTO tenant_retention (tenant_id, collection, max_age, set_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (tenant_id, collection) DO UPDATE SET max_age = excluded.max_age, set_at = excluded.set_at`,
				id.String(), coll, int64(d), now)
		}
		if err != nil {
			return fmt.Errorf("set retention: %w", err)
		}
	}
	var n int
	if err := c.queryRow(ctx, tx, `SELECT count(*) FROM tenant_retention WHERE tenant_id = ?`, id.String()).Scan(&n); err != nil {
		return fmt.Errorf("set retention: %w", err)
	}
	if n > MaxRetentionRules {
		return fmt.Errorf("%w: the tenant would have %d rules, at most %d", ErrInvalidRetention, n, MaxRetentionRules)
	}
	return nil
}

// SetRetention applies change r to the tenant's rules (see Retention and
// UpdateTenant).
func (c *Catalog) SetRetention(ctx context.Context, id tenant.ID, r Retention) error {
	_, err := c.UpdateTenant(ctx, id, TenantUpdate{Retention: r})
	return err
}
