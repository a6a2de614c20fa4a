// Package catalog is the control-plane registry: tenants, their placement
// and state, their API keys, kept in
// <data-dir>/control.db (SQLite, Open) or in the schema bulkhead_catalog of
// a PostgreSQL database (OpenPostgres). Both implement the same API.
//
// Lookups on the request path (Authenticate, Placement) are cached; every
// change made through the Catalog invalidates the cache before it returns,
// so revocation and suspension take effect on the next request. On
// PostgreSQL every change is also announced with NOTIFY in its own
// transaction and every Catalog LISTENs, so changes made by another server
// instance invalidate this one's cache as soon as they commit. Entries also
// expire after Options.CacheTTL, bounding staleness in any case.
//
// Migration versions are not kept here: each unit (a shard's pooled
// tables, a tenant's schema, database or file) records its own, in the
// transaction of each migration (see migrate.VersionReader and package
// fleet). Catalogs made by earlier versions hold a table unit_versions that
// is no longer read or written; it can be dropped once no older server runs.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Options configures Open.
type Options struct {
	// CacheTTL bounds how long a cached key or tenant lookup is trusted
	// (default 2s). Changes through this Catalog invalidate at once.
	CacheTTL time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Logger receives the PostgreSQL listener's reconnects (nil: discarded).
	Logger *slog.Logger
}

// Catalog is the registry. It is safe for concurrent use.
type Catalog struct {
	db       *sql.DB
	d        *dialect
	now      func() time.Time
	cache    *cache
	bg       sync.WaitGroup // last-used updates in flight
	listener *listener      // PostgreSQL only
	issuers  issuerCache    // trusted JWT issuers per tenant (issuers.go)
}

const schemaSQL = `
CREATE TABLE IF NOT EXISTS tenants (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	tier       TEXT NOT NULL,
	state      TEXT NOT NULL,
	mode       TEXT NOT NULL,
	shard      TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys (
	tenant_id    TEXT NOT NULL,
	id           TEXT NOT NULL UNIQUE,
	role         TEXT NOT NULL,
	name         TEXT NOT NULL,
	secret_hash  BLOB NOT NULL,
	created_at   INTEGER NOT NULL,
	revoked_at   INTEGER,
	last_used_at INTEGER,
	PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS support_agents (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	secret_hash BLOB NOT NULL,
	created_at  INTEGER NOT NULL,
	revoked_at  INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS support_grants (
	tenant_id  TEXT NOT NULL,
	id         TEXT NOT NULL UNIQUE,
	agent_id   TEXT NOT NULL,
	reason     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER,
	PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS support_grants_agent ON support_grants (tenant_id, agent_id, expires_at);
CREATE TABLE IF NOT EXISTS issuers (
	tenant_id TEXT NOT NULL,
	issuer    TEXT NOT NULL,
	position  INTEGER NOT NULL,
	spec      TEXT NOT NULL,
	PRIMARY KEY (tenant_id, issuer)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS issuers_by_issuer ON issuers (issuer);
CREATE TABLE IF NOT EXISTS tenant_limits (
	tenant_id TEXT PRIMARY KEY,
	spec      TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS analysts (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	secret_hash BLOB NOT NULL,
	budget      INTEGER NOT NULL CHECK (budget >= 0),
	spent       INTEGER NOT NULL CHECK (spent >= 0 AND spent <= budget),
	created_at  INTEGER NOT NULL,
	revoked_at  INTEGER
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tenant_retention (
	tenant_id  TEXT NOT NULL,
	collection TEXT NOT NULL,
	max_age    INTEGER NOT NULL,
	set_at     INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, collection)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tenant_events (
	tenant_id TEXT PRIMARY KEY,
	data      INTEGER NOT NULL,
	set_at    INTEGER NOT NULL
) WITHOUT ROWID;
`

// Open opens (creating if needed) the catalog database at path.
func Open(path string, opts Options) (*Catalog, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open catalog: path %q must not contain '?' or '#'", path)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.Exec(schemaSQL); err != nil {
		db.Close()
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	return newCatalog(db, &dialect{}, opts), nil
}

func newCatalog(db *sql.DB, d *dialect, opts Options) *Catalog {
	ttl := opts.CacheTTL
	if ttl <= 0 {
		ttl = 2 * time.Second
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Catalog{db: db, d: d, now: now, cache: newCache(ttl, now)}
}

// Close stops the listener, waits for background updates and closes the
// catalog. On PostgreSQL the pool passed to OpenPostgres stays open.
func (c *Catalog) Close() error {
	if c.listener != nil {
		c.listener.stop()
	}
	c.bg.Wait()
	return c.db.Close()
}

// Ping checks the catalog database.
func (c *Catalog) Ping(ctx context.Context) error {
	var one int
	return c.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// ProvisionFunc prepares or removes a tenant's storage (store.Router.Provision / Drop).
type ProvisionFunc func(ctx context.Context, id tenant.ID, p store.Placement) error

// CreateTenant registers t (ID, Name, Tier and Placement set by the caller;
// State and timestamps set here), calls provision, and makes the tenant
// active. It returns ErrExists if the id is taken (also by a tenant still
// being offboarded); if provision fails, nothing is left in the catalog.
func (c *Catalog) CreateTenant(ctx context.Context, t Tenant, provision ProvisionFunc) (Tenant, error) {
	if t.ID.IsZero() {
		return Tenant{}, tenant.ErrMissing
	}
	if t.Name == "" {
		t.Name = t.ID.String()
	}
	if t.Tier == "" {
		t.Tier = DefaultTier
	}
	if err := ValidName(t.Name); err != nil {
		return Tenant{}, err
	}
	if err := ValidTier(t.Tier); err != nil {
		return Tenant{}, err
	}
	if _, err := store.ParseMode(string(t.Placement.Mode)); err != nil {
		return Tenant{}, err
	}
	now := c.now().UTC().Truncate(time.Microsecond)
	t.State, t.CreatedAt, t.UpdatedAt = Provisioning, now, now
	_, err := c.execNotify(ctx, tenantPayload(t.ID.String()), `INSERT INTO tenants (id, name, tier, state, mode, shard, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID.String(), t.Name, t.Tier, string(t.State), string(t.Placement.Mode), t.Placement.Shard, micros(now), micros(now))
	if err != nil {
		if c.d.isConstraint(err) {
			return Tenant{}, fmt.Errorf("%w: %s", ErrExists, t.ID)
		}
		return Tenant{}, fmt.Errorf("create tenant: %w", err)
	}
	if err := provision(ctx, t.ID, t.Placement); err != nil {
		// Leave nothing behind; a fresh context so cancellation cannot strand the row.
		_, derr := c.execNotify(context.WithoutCancel(ctx), tenantPayload(t.ID.String()), `DELETE FROM tenants WHERE id = ? AND state = ?`, t.ID.String(), string(Provisioning))
		return Tenant{}, errors.Join(fmt.Errorf("provision tenant %s: %w", t.ID, err), derr)
	}
	if _, err := c.execNotify(ctx, tenantPayload(t.ID.String()), `UPDATE tenants SET state = ? WHERE id = ?`, string(Active), t.ID.String()); err != nil {
		return Tenant{}, fmt.Errorf("activate tenant: %w", err)
	}
	c.cache.invalidateTenant(t.ID)
	t.State = Active
	return t, nil
}

type rowScanner interface{ Scan(dest ...any) error }

const tenantCols = `id, name, tier, state, mode, shard, created_at, updated_at`

func scanTenant(r rowScanner) (Tenant, error) {
	var (
		t                Tenant
		id, state, mode  string
		created, updated int64
	)
	if err := r.Scan(&id, &t.Name, &t.Tier, &state, &mode, &t.Placement.Shard, &created, &updated); err != nil {
		return Tenant{}, err
	}
	tid, err := tenant.Parse(id)
	if err != nil {
		return Tenant{}, fmt.Errorf("catalog holds an invalid tenant id: %w", err)
	}
	t.ID, t.State, t.Placement.Mode = tid, State(state), store.Mode(mode)
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	return t, nil
}

// Tenant returns the tenant or ErrNotFound.
func (c *Catalog) Tenant(ctx context.Context, id tenant.ID) (Tenant, error) {
	t, err := scanTenant(c.queryRow(ctx, c.db, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return Tenant{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("read tenant: %w", err)
	}
	return t, nil
}

// ListTenants returns up to limit tenants whose ids sort after after, by id.
func (c *Catalog) ListTenants(ctx context.Context, after string, limit int) ([]Tenant, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := c.query(ctx, c.db, `SELECT `+tenantCols+` FROM tenants WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	out := []Tenant{}
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// CountByShard returns how many tenants each shard hosts.
func (c *Catalog) CountByShard(ctx context.Context) (map[string]int, error) {
	rows, err := c.query(ctx, c.db, `SELECT shard, count(*) FROM tenants GROUP BY shard`)
	if err != nil {
		return nil, fmt.Errorf("count tenants: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

// UpdateTenant applies u and returns the tenant.
func (c *Catalog) UpdateTenant(ctx context.Context, id tenant.ID, u TenantUpdate) (Tenant, error) {
	if u.Name != nil {
		if err := ValidName(*u.Name); err != nil {
			return Tenant{}, err
		}
	}
	if u.Tier != nil {
		if err := ValidTier(*u.Tier); err != nil {
			return Tenant{}, err
		}
	}
	if u.Limits != nil {
		if err := u.Limits.Validate(); err != nil {
			return Tenant{}, err
		}
	}
	if err := u.Retention.validChange(); err != nil {
		return Tenant{}, err
	}
	var also func(*sql.Tx) error
	if u.Limits != nil || u.Retention != nil || u.Events != nil {
		also = func(tx *sql.Tx) error {
			if u.Limits != nil {
				if err := c.writeLimits(ctx, tx, id, *u.Limits); err != nil {
					return err
				}
			}
			if u.Events != nil {
				if err := c.writeEventSettings(ctx, tx, id, *u.Events); err != nil {
					return err
				}
			}
			if u.Retention != nil {
				return c.writeRetention(ctx, tx, id, u.Retention)
			}
			return nil
		}
	}
	return c.changeWith(ctx, id, func(t *Tenant) error {
		if t.State == Deleting || t.State == Provisioning {
			return fmt.Errorf("%w: tenant %s is %s", ErrInvalidState, id, t.State)
		}
		if u.Name != nil {
			t.Name = *u.Name
		}
		if u.Tier != nil {
			t.Tier = *u.Tier
		}
		return nil
	}, also)
}

// Suspend switches an active tenant to suspended; its credentials are
// refused from the next request on. Suspending a suspended tenant is a no-op.
func (c *Catalog) Suspend(ctx context.Context, id tenant.ID) (Tenant, error) {
	return c.setState(ctx, id, Suspended)
}

// Resume switches a suspended tenant back to active. Resuming an active
// tenant is a no-op.
func (c *Catalog) Resume(ctx context.Context, id tenant.ID) (Tenant, error) {
	return c.setState(ctx, id, Active)
}

func (c *Catalog) setState(ctx context.Context, id tenant.ID, to State) (Tenant, error) {
	return c.change(ctx, id, func(t *Tenant) error {
		if t.State != Active && t.State != Suspended {
			return fmt.Errorf("%w: tenant %s is %s", ErrInvalidState, id, t.State)
		}
		t.State = to
		return nil
	})
}

// change reads the tenant, applies fn and writes it back in one transaction.
func (c *Catalog) change(ctx context.Context, id tenant.ID, fn func(*Tenant) error) (Tenant, error) {
	return c.changeWith(ctx, id, fn, nil)
}

// changeWith is change, and also, if not nil, runs in the same
// transaction after fn (the tenant row is then written and announced
// even if fn changed nothing).
func (c *Catalog) changeWith(ctx context.Context, id tenant.ID, fn func(*Tenant) error, also func(*sql.Tx) error) (Tenant, error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return Tenant{}, fmt.Errorf("update tenant: %w", err)
	}
	defer tx.Rollback()
	t, err := scanTenant(c.queryRow(ctx, tx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return Tenant{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("update tenant: %w", err)
	}
	before := t
	if err := fn(&t); err != nil {
		return Tenant{}, err
	}
	if t == before && also == nil {
		return t, nil
	}
	if also != nil {
		if err := also(tx); err != nil {
			return Tenant{}, err
		}
	}
	t.UpdatedAt = c.now().UTC().Truncate(time.Microsecond)
	if _, err := c.exec(ctx, tx, `UPDATE tenants SET name = ?, tier = ?, state = ?, updated_at = ? WHERE id = ?`,
		t.Name, t.Tier, string(t.State), micros(t.UpdatedAt), id.String()); err != nil {
		return Tenant{}, fmt.Errorf("update tenant: %w", err)
	}
	if err := c.notify(ctx, tx, tenantPayload(id.String())); err != nil {
		return Tenant{}, fmt.Errorf("update tenant: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Tenant{}, fmt.Errorf("update tenant: %w", err)
	}
	c.cache.invalidateTenant(id)
	return t, nil
}

// Placement implements store.Placements. Only active and suspended tenants
// have one; any other tenant yields an error wrapping store.ErrUnknownTenant.
func (c *Catalog) Placement(ctx context.Context, id tenant.ID) (store.Placement, error) {
	e, err := c.tenantEntry(ctx, id)
	if err != nil {
		return store.Placement{}, err
	}
	if !e.found || (e.state != Active && e.state != Suspended) {
		return store.Placement{}, fmt.Errorf("%w: %s", store.ErrUnknownTenant, id)
	}
	return e.placement, nil
}

// tenantEntry returns the cached state and placement of a tenant.
func (c *Catalog) tenantEntry(ctx context.Context, id tenant.ID) (tenantEntry, error) {
	if e, ok := c.cache.tenant(id); ok {
		return e, nil
	}
	gen := c.cache.generation()
	var state, mode, shard, tier string
	var spec sql.NullString
	var created int64
	var eventData sql.NullInt64
	err := c.queryRow(ctx, c.db, `SELECT t.state, t.mode, t.shard, t.tier, t.created_at, l.spec, e.data FROM tenants t
		LEFT JOIN tenant_limits l ON l.tenant_id = t.id
		LEFT JOIN tenant_events e ON e.tenant_id = t.id AND e.set_at >= t.created_at
		WHERE t.id = ?`, id.String()).Scan(&state, &mode, &shard, &tier, &created, &spec, &eventData)
	e := tenantEntry{}
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return tenantEntry{}, fmt.Errorf("read tenant: %w", err)
	default:
		e = tenantEntry{found: true, state: State(state), placement: store.Placement{Mode: store.Mode(mode), Shard: shard}, tier: tier,
			created: fromMicros(created), eventData: eventData.Valid && eventData.Int64 != 0}
		if spec.Valid {
			if e.limits, err = decodeLimits(spec.String); err != nil {
				return tenantEntry{}, fmt.Errorf("read tenant %s: %w", id, err)
			}
		}
	}
	c.cache.putTenant(gen, id, e)
	return e, nil
}
