package keys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/pgddl"
	"github.com/bulkhead-dev/bulkhead/internal/sqlrebind"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Wrapped is a tenant's two keysets as stored: each encrypted (wrapped)
// with the key-encryption key, bound to the tenant by associated data.
// Generation counts the changes to the row (rotation, rewrap), for
// optimistic concurrency between instances.
type Wrapped struct {
	Data       []byte // AEAD keyset (AES-256-GCM) that encrypts record data
	Index      []byte // PRF keyset (HMAC-SHA256) that makes index tokens
	Generation int64
}

// Store keeps the wrapped keysets. SQLStore implements it on SQLite and
// PostgreSQL; a team can keep them elsewhere.
type Store interface {
	// Load returns the tenant's keysets, or an error wrapping ErrNoKeys.
	Load(ctx context.Context, id tenant.ID) (Wrapped, error)
	// Insert stores the tenant's first keysets, or fails wrapping
	// ErrConflict if it has some.
	Insert(ctx context.Context, id tenant.ID, w Wrapped) error
	// Replace stores w if the stored generation is still prev, or fails
	// wrapping ErrConflict.
	Replace(ctx context.Context, id tenant.ID, w Wrapped, prev int64) error
	// Delete removes the tenant's keysets; it reports whether there were any.
	Delete(ctx context.Context, id tenant.ID) (bool, error)
	// Tenants lists the tenants with keysets whose id sorts after after,
	// in order, at most limit of them.
	Tenants(ctx context.Context, after string, limit int) ([]tenant.ID, error)
}

// Sentinel errors.
var (
	// ErrNoKeys: the tenant has no keysets (never had, or shredded).
	ErrNoKeys = errors.New("tenant has no encryption keys")
	// ErrConflict: another writer changed the tenant's keysets first.
	ErrConflict = errors.New("tenant keysets changed concurrently")
	// ErrUndecryptable: a ciphertext does not open under the tenant's keys:
	// another tenant's, another record's, tampered with, or sealed under a
	// destroyed key.
	ErrUndecryptable = errors.New("ciphertext does not decrypt under the tenant's keys")
)

// SQLStore keeps wrapped keysets in a table of a SQLite database or of a
// PostgreSQL database (schema bulkhead_keys).
type SQLStore struct {
	db       *sql.DB
	postgres bool
}

const sqliteKeysSQL = `CREATE TABLE IF NOT EXISTS tenant_keysets (
	tenant_id  TEXT PRIMARY KEY,
	data       BLOB NOT NULL,
	idx        BLOB NOT NULL,
	generation INTEGER NOT NULL
) WITHOUT ROWID`

const sqliteCanarySQL = `CREATE TABLE IF NOT EXISTS keyring_canary (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	wrapped BLOB NOT NULL
)`

const pgCanarySQL = `CREATE TABLE IF NOT EXISTS bulkhead_keys.keyring_canary (
	id      integer PRIMARY KEY CHECK (id = 1),
	wrapped bytea NOT NULL
)`

const sqliteStateSQL = `CREATE TABLE IF NOT EXISTS key_state (
	name TEXT PRIMARY KEY,
	at   INTEGER NOT NULL
) WITHOUT ROWID`

const pgStateSQL = `CREATE TABLE IF NOT EXISTS bulkhead_keys.key_state (
	name text PRIMARY KEY,
	at   bigint NOT NULL
)`

const pgKeysSQL = `CREATE SCHEMA IF NOT EXISTS bulkhead_keys;
REVOKE ALL ON SCHEMA bulkhead_keys FROM PUBLIC;
CREATE TABLE IF NOT EXISTS bulkhead_keys.tenant_keysets (
	tenant_id  text PRIMARY KEY,
	data       bytea NOT NULL,
	idx        bytea NOT NULL,
	generation bigint NOT NULL
)`

// OpenSQLStore makes the keyset table in db if needed. postgres says which
// engine db is (pgx's stdlib driver, connected as the role that owns the
// database: the serving role must not read this table).
func OpenSQLStore(ctx context.Context, db *sql.DB, postgres bool) (*SQLStore, error) {
	var err error
	if postgres {
		err = pgddl.Apply(ctx, db, "bulkhead_keys", pgKeysSQL)
	} else {
		_, err = db.ExecContext(ctx, sqliteKeysSQL)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: create keyset table: %w", err)
	}
	s := &SQLStore{db: db, postgres: postgres}
	if err := s.jobsTable(ctx); err != nil {
		return nil, fmt.Errorf("keys: create job table: %w", err)
	}
	canary, state := sqliteCanarySQL, sqliteStateSQL
	if postgres {
		canary, state = pgCanarySQL, pgStateSQL
	}
	for _, ddl := range []string{canary, state} {
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return nil, fmt.Errorf("keys: create table: %w", err)
		}
	}
	return s, nil
}

// rebind qualifies the key store's tables with schema bulkhead_keys and
// numbers placeholders, for PostgreSQL.
var rebind = sqlrebind.New("bulkhead_keys", "tenant_keysets", "key_jobs", "keyring_canary", "key_state")

// q returns query in the store's dialect (see package sqlrebind).
func (s *SQLStore) q(query string) string {
	if !s.postgres {
		return query
	}
	return rebind.Q(query)
}

// Load implements Store.
func (s *SQLStore) Load(ctx context.Context, id tenant.ID) (Wrapped, error) {
	var w Wrapped
	err := s.db.QueryRowContext(ctx, s.q(`SELECT data, idx, generation FROM tenant_keysets WHERE tenant_id = ?`),
		id.String()).Scan(&w.Data, &w.Index, &w.Generation)
	if errors.Is(err, sql.ErrNoRows) {
		return Wrapped{}, fmt.Errorf("%w: %s", ErrNoKeys, id)
	}
	if err != nil {
		return Wrapped{}, fmt.Errorf("keys: load %s: %w", id, err)
	}
	return w, nil
}

// Insert implements Store.
func (s *SQLStore) Insert(ctx context.Context, id tenant.ID, w Wrapped) error {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO tenant_keysets (tenant_id, data, idx, generation)
		VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id) DO NOTHING`), id.String(), w.Data, w.Index, w.Generation)
	return s.one(res, err, id, "insert")
}

// Replace implements Store.
func (s *SQLStore) Replace(ctx context.Context, id tenant.ID, w Wrapped, prev int64) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE tenant_keysets SET data = ?, idx = ?, generation = ?
		WHERE tenant_id = ? AND generation = ?`), w.Data, w.Index, w.Generation, id.String(), prev)
	return s.one(res, err, id, "replace")
}

func (s *SQLStore) one(res sql.Result, err error, id tenant.ID, op string) error {
	if err != nil {
		return fmt.Errorf("keys: %s %s: %w", op, id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("keys: %s %s: %w", op, id, err)
	} else if n != 1 {
		return fmt.Errorf("%w: %s", ErrConflict, id)
	}
	return nil
}

// Delete implements Store.
func (s *SQLStore) Delete(ctx context.Context, id tenant.ID) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM tenant_keysets WHERE tenant_id = ?`), id.String())
	if err != nil {
		return false, fmt.Errorf("keys: delete %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Tenants implements Store.
func (s *SQLStore) Tenants(ctx context.Context, after string, limit int) ([]tenant.ID, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT tenant_id FROM tenant_keysets WHERE tenant_id > ?
		ORDER BY tenant_id LIMIT ?`), after, limit)
	if err != nil {
		return nil, fmt.Errorf("keys: list tenants: %w", err)
	}
	defer rows.Close()
	var ids []tenant.ID
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		id, err := tenant.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("keys: stored tenant id %q: %w", s, err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Canary returns the value wrapped by the key-encryption key that tells
// whether a keyring is the one the stored keysets were wrapped with; nil
// if there is none yet.
func (s *SQLStore) Canary(ctx context.Context) ([]byte, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, s.q(`SELECT wrapped FROM keyring_canary WHERE id = 1`)).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return b, err
}

// SetCanary stores the canary (replacing it: after a rewrap).
func (s *SQLStore) SetCanary(ctx context.Context, wrapped []byte) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO keyring_canary (id, wrapped) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET wrapped = excluded.wrapped`), wrapped)
	return err
}

// The key store's marks (SetMark, Mark).
const (
	// MarkSealed is when the seal job that last finished started: every
	// record written before it is sealed.
	MarkSealed = "sealed"
	// MarkPlaintext is when a server last started with encryption off
	// (and so may have written records in the clear).
	MarkPlaintext = "plaintext"
)

// SetMark records mark name at t.
func (s *SQLStore) SetMark(ctx context.Context, name string, t time.Time) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO key_state (name, at) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET at = excluded.at`), name, t.UnixMicro())
	if err != nil {
		return fmt.Errorf("keys: set %s: %w", name, err)
	}
	return nil
}

// Mark returns when mark name was set, ok = false if never.
func (s *SQLStore) Mark(ctx context.Context, name string) (t time.Time, ok bool, err error) {
	var at int64
	err = s.db.QueryRowContext(ctx, s.q(`SELECT at FROM key_state WHERE name = ?`), name).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("keys: read %s: %w", name, err)
	}
	return time.UnixMicro(at).UTC(), true, nil
}
