package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/store"
)

// tx is a store.BackendTx confined to one tenant three times over: its
// statements bind the tenant, row-level security compares each row with the
// transaction's tenant setting, and search_path names only the tenant's
// unit (its schema, or the schema of its database).
//
// It begins lazily: BEGIN, the transaction-local tenant setting and
// search_path go to the server in one pipelined batch with the first
// statement, so a point read costs one round trip plus COMMIT.
type tx struct {
	conn    *pgxpool.Conn
	begin   string // BEGIN ... with the isolation and access mode
	tenant  string
	path    string // search_path: the unit's schema, quoted
	begun   bool   // BEGIN has been sent
	release func()
	done    bool
}

// sqlSetTenant sets the tenant and search_path, local to the transaction.
const sqlSetTenant = `SELECT set_config('bulkhead.tenant', $1, true), set_config('search_path', $2, true)`

// send sends sql, preceded by BEGIN and sqlSetTenant in the same batch if
// the transaction has not begun. The caller reads the statement's result
// from br and closes it.
func (t *tx) send(ctx context.Context, sql string, args ...any) (pgx.BatchResults, error) {
	var b pgx.Batch
	first := !t.begun
	if first {
		b.Queue(t.begin)
		b.Queue(sqlSetTenant, t.tenant, t.path)
		t.begun = true
	}
	b.Queue(sql, args...)
	br := t.conn.SendBatch(ctx, &b)
	if first {
		for range 2 {
			if _, err := br.Exec(); err != nil {
				_ = br.Close()
				return nil, err
			}
		}
	}
	return br, nil
}

// exec runs a statement that returns no rows.
func (t *tx) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	br, err := t.send(ctx, sql, args...)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// Get implements store.BackendTx.
func (t *tx) Get(ctx context.Context, collection, id string) (store.Record, error) {
	rec := store.Record{ID: id, Collection: collection}
	var data []byte
	br, err := t.send(ctx, sqlGet, t.tenant, collection, id)
	if err == nil {
		err = br.QueryRow().Scan(&data, &rec.Version, &rec.CreatedAt, &rec.UpdatedAt)
		if cerr := br.Close(); err == nil || errors.Is(err, pgx.ErrNoRows) && cerr != nil {
			err = cerr
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Record{}, store.ErrNotFound
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("postgres: get record: %w", err)
	}
	rec.Data = json.RawMessage(data)
	rec.CreatedAt, rec.UpdatedAt = rec.CreatedAt.UTC(), rec.UpdatedAt.UTC()
	return rec, nil
}

// Insert implements store.BackendTx.
func (t *tx) Insert(ctx context.Context, rec store.Record) error {
	_, err := t.exec(ctx, sqlInsert, t.tenant, rec.Collection, rec.ID, []byte(rec.Data), rec.Version, rec.CreatedAt, rec.UpdatedAt)
	if isCode(err, "23505") { // unique_violation
		return store.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("postgres: insert record: %w", err)
	}
	return nil
}

// Update implements store.BackendTx.
func (t *tx) Update(ctx context.Context, rec store.Record, prev int64) error {
	tag, err := t.exec(ctx, sqlUpdate, t.tenant, rec.Collection, rec.ID, []byte(rec.Data), rec.Version, rec.UpdatedAt, prev)
	if err != nil {
		return fmt.Errorf("postgres: update record: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrConflict
	}
	return nil
}

// Delete implements store.BackendTx.
func (t *tx) Delete(ctx context.Context, collection, id string) error {
	tag, err := t.exec(ctx, sqlDelete, t.tenant, collection, id)
	if err != nil {
		return fmt.Errorf("postgres: delete record: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// List implements store.BackendTx.
func (t *tx) List(ctx context.Context, q store.Query) ([]store.Record, error) {
	args := make([]any, 0, 4+4*len(q.Filters))
	args = append(args, t.tenant, q.Collection, q.After)
	for _, f := range q.Filters {
		args = append(args, filterArgs(f)...)
	}
	args = append(args, q.Limit)
	br, err := t.send(ctx, listQuery(len(q.Filters)), args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list records: %w", err)
	}
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("postgres: list records: %w", err)
	}
	defer rows.Close()
	var recs []store.Record
	for rows.Next() {
		rec := store.Record{Collection: q.Collection}
		var data []byte
		if err := rows.Scan(&rec.ID, &data, &rec.Version, &rec.CreatedAt, &rec.UpdatedAt); err != nil {
			return nil, fmt.Errorf("postgres: list records: %w", err)
		}
		rec.Data = json.RawMessage(data)
		rec.CreatedAt, rec.UpdatedAt = rec.CreatedAt.UTC(), rec.UpdatedAt.UTC()
		recs = append(recs, rec)
		if len(recs)%store.YieldEvery == 0 {
			runtime.Gosched() // as in store/sqlite: long pages step aside
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list records: %w", err)
	}
	return recs, nil
}

// Collections implements store.BackendTx.
func (t *tx) Collections(ctx context.Context) ([]store.Collection, error) {
	br, err := t.send(ctx, sqlCollections, t.tenant)
	if err != nil {
		return nil, fmt.Errorf("postgres: list collections: %w", err)
	}
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("postgres: list collections: %w", err)
	}
	defer rows.Close()
	var cs []store.Collection
	for rows.Next() {
		var c store.Collection
		if err := rows.Scan(&c.Name, &c.Records); err != nil {
			return nil, fmt.Errorf("postgres: list collections: %w", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list collections: %w", err)
	}
	return cs, nil
}

// Commit implements store.BackendTx.
func (t *tx) Commit() error {
	if t.done {
		return store.ErrTxDone
	}
	t.done = true
	defer t.finish()
	if !t.begun {
		return nil
	}
	tag, err := t.conn.Exec(context.Background(), "COMMIT")
	if err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	if tag.String() == "ROLLBACK" { // the transaction had failed
		return fmt.Errorf("postgres: commit: %w", pgx.ErrTxCommitRollback)
	}
	return nil
}

// Rollback implements store.BackendTx. It is a no-op once the transaction
// is done.
func (t *tx) Rollback() error {
	if t.done {
		return nil
	}
	t.done = true
	defer t.finish()
	if !t.begun || t.conn.Conn().IsClosed() {
		return nil
	}
	if _, err := t.conn.Exec(context.Background(), "ROLLBACK"); err != nil {
		return fmt.Errorf("postgres: rollback: %w", err)
	}
	return nil
}

// finish returns the connection to its pool, which discards it unless it
// is idle outside any transaction, and releases the tenant database.
func (t *tx) finish() {
	t.conn.Release()
	t.release()
}

// isCode reports whether err is a PostgreSQL error with SQLSTATE code.
func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}
