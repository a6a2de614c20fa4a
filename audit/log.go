package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/bulkhead-dev/bulkhead/internal/pgddl"
	"github.com/bulkhead-dev/bulkhead/internal/sqlrebind"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// FileName is the audit log's file in a server's data directory.
const FileName = "audit.db"

// PostgresSchema is the PostgreSQL schema holding the audit tables.
const PostgresSchema = "bulkhead_audit"

// Limits of List.
const (
	DefaultListLimit = 50
	MaxListLimit     = 1000
)

// maxAttempts bounds Append's retries after losing a race for a chain's
// next seq.
const maxAttempts = 50

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS entries (
	chain      TEXT NOT NULL,
	seq        INTEGER NOT NULL,
	time_ns    INTEGER NOT NULL,
	principal  TEXT NOT NULL,
	action     TEXT NOT NULL,
	resource   TEXT NOT NULL,
	decision   TEXT NOT NULL,
	request_id TEXT NOT NULL,
	prev       TEXT NOT NULL,
	hash       TEXT NOT NULL,
	PRIMARY KEY (chain, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS heads (
	chain TEXT PRIMARY KEY,
	seq   INTEGER NOT NULL,
	hash  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_action ON entries (chain, action, seq);
CREATE INDEX IF NOT EXISTS entries_by_time ON entries (time_ns);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE of entries refused'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE of entries refused'); END;
CREATE TRIGGER IF NOT EXISTS heads_forward_only BEFORE UPDATE ON heads
WHEN NEW.chain <> OLD.chain OR NEW.seq <> OLD.seq + 1
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: a chain head only moves forward by one'); END;
CREATE TRIGGER IF NOT EXISTS heads_no_delete BEFORE DELETE ON heads
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE of heads refused'); END;
`

const pgSchemaSQL = `
CREATE SCHEMA IF NOT EXISTS bulkhead_audit;
CREATE TABLE IF NOT EXISTS bulkhead_audit.entries (
	chain      TEXT NOT NULL,
	seq        BIGINT NOT NULL,
	time_ns    BIGINT NOT NULL,
	principal  TEXT NOT NULL,
	action     TEXT NOT NULL,
	resource   TEXT NOT NULL,
	decision   TEXT NOT NULL,
	request_id TEXT NOT NULL,
	prev       TEXT NOT NULL,
	hash       TEXT NOT NULL,
	PRIMARY KEY (chain, seq)
);
CREATE TABLE IF NOT EXISTS bulkhead_audit.heads (
	chain TEXT PRIMARY KEY,
	seq   BIGINT NOT NULL,
	hash  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_action ON bulkhead_audit.entries (chain, action, seq);
CREATE INDEX IF NOT EXISTS entries_by_time ON bulkhead_audit.entries (time_ns);
CREATE OR REPLACE FUNCTION bulkhead_audit.reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit log is append-only: % of %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
		USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE FUNCTION bulkhead_audit.head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.chain <> OLD.chain OR NEW.seq <> OLD.seq + 1 THEN
		RAISE EXCEPTION 'audit log is append-only: a chain head only moves forward by one'
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON bulkhead_audit.entries
	FOR EACH ROW EXECUTE FUNCTION bulkhead_audit.reject_change();
CREATE OR REPLACE TRIGGER entries_no_truncate BEFORE TRUNCATE ON bulkhead_audit.entries
	FOR EACH STATEMENT EXECUTE FUNCTION bulkhead_audit.reject_change();
CREATE OR REPLACE TRIGGER heads_forward_only BEFORE UPDATE ON bulkhead_audit.heads
	FOR EACH ROW EXECUTE FUNCTION bulkhead_audit.head_forward();
CREATE OR REPLACE TRIGGER heads_no_delete BEFORE DELETE ON bulkhead_audit.heads
	FOR EACH ROW EXECUTE FUNCTION bulkhead_audit.reject_change();
CREATE OR REPLACE TRIGGER heads_no_truncate BEFORE TRUNCATE ON bulkhead_audit.heads
	FOR EACH STATEMENT EXECUTE FUNCTION bulkhead_audit.reject_change();
REVOKE UPDATE, DELETE, TRUNCATE ON bulkhead_audit.entries FROM PUBLIC;
REVOKE DELETE, TRUNCATE ON bulkhead_audit.heads FROM PUBLIC;
`

// Log is an append-only, hash-chained audit log on SQLite or PostgreSQL:
// one chain per tenant and ControlChain for the control plane. It is safe
// for concurrent use, also by several processes on one database.
type Log struct {
	db       *sql.DB
	postgres bool
}

// OpenSQLite opens (creating if needed) the audit log in the SQLite file at
// path, in WAL mode with synchronous=FULL, so an appended entry survives a
// crash once Append returns.
func OpenSQLite(path string) (*Log, error) {
	if path == "" {
		return nil, errors.New("open audit log: empty path")
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	if _, err := db.Exec(sqliteSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open audit log %s: create tables: %w", path, err)
	}
	return &Log{db: db}, nil
}

// OpenPostgres opens the audit log in the schema bulkhead_audit of the
// database pool connects to, creating the schema, its tables and its
// append-only triggers if needed (pool's role must be allowed to: the
// owner/migrator role). Close leaves pool open; it stays the caller's.
func OpenPostgres(ctx context.Context, pool *pgxpool.Pool) (*Log, error) {
	if pool == nil {
		return nil, errors.New("open audit log: nil pool")
	}
	db := stdlib.OpenDBFromPool(pool)
	err := pgddl.Apply(ctx, db, "bulkhead_audit", pgSchemaSQL)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open audit log on postgres: create schema %s: %w (the pool must connect as the role that owns the database)", PostgresSchema, err)
	}
	return &Log{db: db, postgres: true}, nil
}

// Close closes the log's database handle.
func (l *Log) Close() error { return l.db.Close() }

// rebind qualifies the audit tables with PostgresSchema and numbers placeholders.
var rebind = sqlrebind.New(PostgresSchema, "entries", "heads")

// q translates a query written for SQLite (`?`, unqualified tables) for
// PostgreSQL.
func (l *Log) q(query string) string {
	if !l.postgres {
		return query
	}
	return rebind.Q(query)
}

// isConflict reports whether err is a unique-constraint violation.
func (l *Log) isConflict(err error) bool {
	if l.postgres {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	}
	return err != nil && strings.Contains(err.Error(), "constraint failed")
}

// Append adds e to the end of its chain and returns it with Seq, Time, Prev
// and Hash set. Appends to one chain are serialised: concurrent callers
// get consecutive seqs. It refuses (ErrInvalidEntry) an entry with a bad
// chain, a missing action or decision, or an over-long field or one with
// control characters.
func (l *Log) Append(ctx context.Context, e Entry) (Entry, error) {
	if err := e.validate(); err != nil {
		return Entry{}, err
	}
	for attempt := 1; ; attempt++ {
		out, err := l.append(ctx, e)
		if err == nil {
			return out, nil
		}
		if !l.isConflict(err) || attempt == maxAttempts || ctx.Err() != nil {
			return Entry{}, fmt.Errorf("append audit entry to chain %s: %w", e.Chain, err)
		}
	}
}

// append reads the chain's head, inserts the next entry and moves the head,
// in one transaction.
func (l *Log) append(ctx context.Context, e Entry) (Entry, error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return Entry{}, err
	}
	defer tx.Rollback()
	if l.postgres {
		// Serialise per chain; the unique (chain, seq) is the backstop.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('bulkhead_audit'), hashtext($1))`, e.Chain); err != nil {
			return Entry{}, err
		}
	}
	var seq int64
	prev := Genesis
	err = tx.QueryRowContext(ctx, l.q(`SELECT seq, hash FROM heads WHERE chain = ?`), e.Chain).Scan(&seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Entry{}, err
	}
	e.Seq = seq + 1
	e.Prev = prev
	e.Time = time.Unix(0, time.Now().UnixNano()).UTC()
	e.Hash = ComputeHash(e)
	if _, err := tx.ExecContext(ctx, l.q(`INSERT INTO entries (chain, seq, time_ns, principal, action, resource, decision, request_id, prev, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		e.Chain, e.Seq, e.Time.UnixNano(), e.Principal, e.Action, e.Resource, e.Decision, e.RequestID, e.Prev, e.Hash); err != nil {
		return Entry{}, err
	}
	if seq == 0 {
		_, err = tx.ExecContext(ctx, l.q(`INSERT INTO heads (chain, seq, hash) VALUES (?, ?, ?)`), e.Chain, e.Seq, e.Hash)
	} else {
		_, err = tx.ExecContext(ctx, l.q(`UPDATE heads SET seq = ?, hash = ? WHERE chain = ?`), e.Seq, e.Hash, e.Chain)
	}
	if err != nil {
		return Entry{}, err
	}
	if err := tx.Commit(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

const entryColumns = `chain, seq, time_ns, principal, action, resource, decision, request_id, prev, hash`

// scanEntry reads one row of entryColumns.
func scanEntry(rows *sql.Rows) (Entry, error) {
	var e Entry
	var ns int64
	err := rows.Scan(&e.Chain, &e.Seq, &ns, &e.Principal, &e.Action, &e.Resource, &e.Decision, &e.RequestID, &e.Prev, &e.Hash)
	e.Time = time.Unix(0, ns).UTC()
	return e, err
}

// List returns up to limit entries of chain with seq greater than after,
// in seq order (pass the last seq seen as after for the next page). limit
// 0 means DefaultListLimit; it is capped at MaxListLimit.
func (l *Log) List(ctx context.Context, chain string, after int64, limit int) ([]Entry, error) {
	if err := validChain(chain); err != nil {
		return nil, err
	}
	switch {
	case limit < 0:
		return nil, fmt.Errorf("list audit entries: limit %d is negative", limit)
	case limit == 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	rows, err := l.db.QueryContext(ctx, l.q(`SELECT `+entryColumns+` FROM entries WHERE chain = ? AND seq > ? ORDER BY seq LIMIT ?`),
		chain, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list audit entries of chain %s: %w", chain, err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("list audit entries of chain %s: %w", chain, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit entries of chain %s: %w", chain, err)
	}
	return out, nil
}

// IncarnationStart returns the seq after which the entries of the
// current incarnation of tenant chain begin: its last BeginAction entry is
// the first of them, unless an OffboardAction came later (the tenant is
// gone, and whatever follows belongs to no tenant yet). 0 means the whole
// chain. One statement, both lookups on the (chain, action, seq) index.
func (l *Log) IncarnationStart(ctx context.Context, chain string) (int64, error) {
	if err := validChain(chain); err != nil {
		return 0, err
	}
	var begin, offboard sql.NullInt64
	err := l.db.QueryRowContext(ctx, l.q(`SELECT
		(SELECT max(seq) FROM entries WHERE chain = ? AND action = ?),
		(SELECT max(seq) FROM entries WHERE chain = ? AND action = ?)`),
		chain, BeginAction, chain, OffboardAction).Scan(&begin, &offboard)
	if err != nil {
		return 0, fmt.Errorf("find where chain %s's incarnation begins: %w", chain, err)
	}
	if begin.Int64 > offboard.Int64 {
		return begin.Int64 - 1, nil // the opening entry is shown
	}
	return offboard.Int64, nil
}
