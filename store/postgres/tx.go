package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// tx is a store.BackendTx confined to one tenant three times over: its
// statements bind the tenant, row-level security admits only the rows of
// the tenant the transaction was begun for (seal.go), and its statements
// reach only the tenant's unit (they name it, or search_path does).
//
// A read-write transaction begins lazily: BEGIN and the seal go to the
// server in one pipelined batch with its first statement. Its writes
// (Insert, Update, AddUsage) are held back and go out in the batch of the
// next statement, or of COMMIT: a Put is two round trips, one for BEGIN,
// the seal, the usage lock and the record (LockUsageGet), one for the
// write, the usage and COMMIT. A held-back write that fails, or finds no
// row where it must find one, fails its batch with an SQL error, so
// nothing after it runs: COMMIT does not, and the transaction changes
// nothing. A transaction that runs team SQL writes at once, as the team's
// statements must see its writes. A read-only
// transaction never sends BEGIN: each statement runs in the implicit
// transaction of its own batch, sealed in the same round trip, so a point
// read costs one round trip. Under READ COMMITTED each statement sees its
// own snapshot either way.
type tx struct {
	b       *Backend
	pool    *pgxpool.Pool
	conn    *pgxpool.Conn
	tenant  string
	id      tenant.ID // the tenant, as events name it
	unit    string    // the unit's schema, unquoted
	write   bool
	begun   bool // write: BEGIN and the seal have been sent
	sent    bool // a batch has been sent on conn
	team    bool // team SQL runs in this transaction (BeginSQL): the full seal
	release func()
	done    bool
	// pending are writes held back to go out in the batch of the next
	// statement or of COMMIT (deferWrite).
	pending []pendingWrite
	// lsn is the commit's WAL position, read after COMMIT on a shard
	// with a replica (replicatx.go).
	lsn uint64
}

// Statements of a transaction's first batch and of its last.
const (
	sqlBeginRW = `BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE`
	sqlCommit  = `COMMIT`
)

func (b *Backend) newTx(ctx context.Context, id tenant.ID, mode store.Mode, write bool) (*tx, error) {
	pool, release, err := b.pool(ctx, id, mode)
	if err != nil {
		return nil, err
	}
	t := &tx{b: b, pool: pool, tenant: id.String(), id: id, unit: unitSchema(id, mode), write: write, release: release}
	if err := t.acquire(ctx); err != nil {
		release()
		return nil, b.beginErr(id, mode, err)
	}
	return t, nil
}

// acquire takes a connection from the pool.
func (t *tx) acquire(ctx context.Context) error {
	conn, err := t.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	t.conn = conn
	return nil
}

// prefix queues what must precede a statement on b: BEGIN and the seal for
// a read-write transaction's first statement, the seal for every statement
// of a read-only one. It returns how many it queued.
func (t *tx) prefix(b *pgx.Batch) int {
	n := 0
	if t.write && t.begun {
		return 0
	}
	if t.write {
		b.Queue(stmtName(pooledSchema, sqlBeginRW))
		n++
		t.begun = true
	}
	if t.team || t.unit != pooledSchema { // schema tenants' statements need search_path
		b.Queue(stmtName(pooledSchema, sqlSeal), t.b.sealArgs(t.tenant, t.unit, t.write)...)
	} else {
		b.Queue(stmtName(pooledSchema, sqlSealStore), t.b.secret, t.unit+":"+t.tenant)
	}
	return n + 1
}

// sendBatch sends the statements build returns behind the prefix they need
// and returns their results, the prefix's already read. A first batch that
// fails because the connection lost its prepared statements (SQL in an
// earlier transaction ran DEALLOCATE ALL) is sent once more on a fresh
// connection, the broken one closed: nothing had run. build is called
// again for the fresh connection.
func (t *tx) sendBatch(ctx context.Context, build func() ([]*pgx.QueuedQuery, error)) (pgx.BatchResults, error) {
	retry := !t.sent || !t.write
	for {
		q, err := build()
		if err != nil {
			return nil, err
		}
		pq, pending, err := t.pendingQueries(ctx)
		if err != nil {
			return nil, err
		}
		var b pgx.Batch
		n := t.prefix(&b)
		b.QueuedQueries = append(b.QueuedQueries, pq...)
		b.QueuedQueries = append(b.QueuedQueries, q...)
		t.sent = true
		br := t.conn.SendBatch(ctx, &b)
		for i := 0; i < n && err == nil; i++ {
			_, err = br.Exec()
		}
		if err == nil {
			err = readPending(br, pending)
		}
		if err == nil {
			return br, nil
		}
		_ = br.Close()
		if !retry || !isCode(err, "26000") { // invalid_sql_statement_name
			return nil, err
		}
		t.pending = pending
		retry = false
		t.begun = false
		t.discardConn()
		if err := t.acquire(ctx); err != nil {
			return nil, err
		}
	}
}

// sendFolded sends q, whose statement sets the tenant itself (fold.go).
// Team SQL cannot drop prepared statements (guard.go); should a
// connection have lost them anyway, the read fails with SQLSTATE 26000 and
// the connection is closed, so the pool replaces it for the next one.
func (t *tx) sendFolded(ctx context.Context, q []*pgx.QueuedQuery) (pgx.BatchResults, error) {
	t.sent = true
	return healing{t.conn.SendBatch(ctx, &pgx.Batch{QueuedQueries: q}), t.conn}, nil
}

// healing closes its connection when the batch failed for a prepared
// statement the connection does not have.
type healing struct {
	pgx.BatchResults
	conn *pgxpool.Conn
}

func (h healing) Close() error {
	err := h.BatchResults.Close()
	if isCode(err, "26000") {
		_ = h.conn.Conn().Close(context.Background())
	}
	return err
}

// discardConn closes the connection (the pool then drops it) and releases it.
func (t *tx) discardConn() {
	_ = t.conn.Conn().Close(context.Background())
	t.conn.Release()
	t.conn = nil
}

// send sends one statement; the caller reads its result from br and closes it.
func (t *tx) send(ctx context.Context, sql string, args ...any) (pgx.BatchResults, error) {
	if !t.write && !t.team && t.unit == pooledSchema && foldedReads[sql] {
		// One statement: the read carries the setting (fold.go).
		args = append(args[:len(args):len(args)], t.b.secret, t.unit+":"+t.tenant)
		q := []*pgx.QueuedQuery{{SQL: foldName(sql), Arguments: args}}
		return t.sendFolded(ctx, q)
	}
	return t.sendBatch(ctx, func() ([]*pgx.QueuedQuery, error) {
		name, err := t.name(ctx, sql)
		if err != nil {
			return nil, err
		}
		return []*pgx.QueuedQuery{{SQL: name, Arguments: args}}, nil
	})
}

// exec runs a statement that returns no rows.
func (t *tx) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return execResult(t.send(ctx, sql, args...))
}

// execResult reads the command tag of a batch of one statement and closes it.
func execResult(br pgx.BatchResults, err error) (pgconn.CommandTag, error) {
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
	br, err := t.send(ctx, sqlGet, t.tenant, collection, id)
	if err != nil {
		return store.Record{}, fmt.Errorf("postgres: get record: %w", err)
	}
	rec, err := scanRecord(br.QueryRow(), collection, id)
	if cerr := br.Close(); cerr != nil && (err == nil || errors.Is(err, store.ErrNotFound)) {
		return store.Record{}, fmt.Errorf("postgres: get record: %w", cerr)
	}
	return rec, err
}

// LockUsageGet implements store's usageGetTx: LockUsage and Get in one
// batch, BEGIN and the seal in front on the transaction's first. The read
// runs after the lock is held. A tenant without a usage row gets one
// (LockUsage), and its record is read again under the lock.
func (t *tx) LockUsageGet(ctx context.Context, collection, id string) (store.Usage, store.Record, error) {
	br, err := t.sendBatch(ctx, func() ([]*pgx.QueuedQuery, error) {
		lock, err := t.name(ctx, sqlUsageLock)
		if err != nil {
			return nil, err
		}
		get, err := t.name(ctx, sqlGet)
		if err != nil {
			return nil, err
		}
		return []*pgx.QueuedQuery{
			{SQL: lock, Arguments: []any{t.tenant}},
			{SQL: get, Arguments: []any{t.tenant, collection, id}},
		}, nil
	})
	if err != nil {
		return store.Usage{}, store.Record{}, fmt.Errorf("postgres: usage: %w", err)
	}
	var u store.Usage
	lerr := br.QueryRow().Scan(&u.Records, &u.Bytes)
	if lerr != nil && !errors.Is(lerr, pgx.ErrNoRows) {
		_ = br.Close()
		return store.Usage{}, store.Record{}, fmt.Errorf("postgres: usage: %w", lerr)
	}
	rec, gerr := scanRecord(br.QueryRow(), collection, id)
	if cerr := br.Close(); cerr != nil {
		return store.Usage{}, store.Record{}, fmt.Errorf("postgres: get record: %w", cerr)
	}
	if lerr != nil { // no usage row yet
		if u, lerr = t.LockUsage(ctx); lerr != nil {
			return store.Usage{}, store.Record{}, lerr
		}
		rec, gerr = t.Get(ctx, collection, id)
		return u, rec, gerr
	}
	if gerr != nil && !errors.Is(gerr, store.ErrNotFound) {
		return store.Usage{}, store.Record{}, gerr
	}
	return u, rec, gerr
}

// scanRecord scans the row of sqlGet.
func scanRecord(row pgx.Row, collection, id string) (store.Record, error) {
	rec := store.Record{ID: id, Collection: collection}
	var data []byte
	err := row.Scan(&data, &rec.Version, &rec.CreatedAt, &rec.UpdatedAt)
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

// Insert implements store.BackendTx. The insert is held back (deferWrite):
// a conflict fails the batch that sends it, with store.ErrConflict.
func (t *tx) Insert(ctx context.Context, rec store.Record) error {
	// The data is copied: the caller may reuse its buffer before the
	// held-back insert goes out.
	return t.deferWrite(ctx, sqlInsert, insertErr, t.tenant, rec.Collection, rec.ID, bytes.Clone(rec.Data), rec.Version, rec.CreatedAt, rec.UpdatedAt)
}

func insertErr(err error) error {
	if isCode(err, "23505") { // unique_violation
		return store.ErrConflict
	}
	return fmt.Errorf("postgres: insert record: %w", err)
}

// Update implements store.BackendTx. The update is held back
// (deferWrite): a record no longer at version prev fails the batch that
// sends it, with store.ErrConflict.
func (t *tx) Update(ctx context.Context, rec store.Record, prev int64) error {
	return t.deferWrite(ctx, sqlUpdateOne, updateErr, t.tenant, rec.Collection, rec.ID, bytes.Clone(rec.Data), rec.Version, rec.UpdatedAt, prev)
}

func updateErr(err error) error {
	if isCode(err, "22012") { // division_by_zero: sqlUpdateOne updated no row
		return store.ErrConflict
	}
	return fmt.Errorf("postgres: update record: %w", err)
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
	if err := q.CheckTokens(); err != nil {
		return nil, fmt.Errorf("postgres: list records: %w", err)
	}
	query, args := listStatement(t.tenant, q)
	br, err := t.send(ctx, query, args...)
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

// Commit implements store.BackendTx. Held-back writes go out with COMMIT,
// in one batch: if one fails, COMMIT does not run and the transaction is
// rolled back.
func (t *tx) Commit() error {
	if t.done {
		return store.ErrTxDone
	}
	t.done = true
	if t.conn == nil && len(t.pending) > 0 { // a statement failed to get a connection
		t.finish()
		return fmt.Errorf("postgres: commit: %w", pgx.ErrTxCommitRollback)
	}
	if t.conn == nil || !t.begun && len(t.pending) == 0 {
		t.finish()
		return nil
	}
	ctx := context.Background()
	var tag pgconn.CommandTag
	var err error
	if len(t.pending) == 0 {
		tag, err = t.conn.Exec(ctx, "COMMIT")
	} else {
		// An error of sendBatch is a held-back write's, as its method
		// would have returned it; COMMIT's own is read after.
		var br pgx.BatchResults
		if br, err = t.sendBatch(ctx, func() ([]*pgx.QueuedQuery, error) {
			return []*pgx.QueuedQuery{{SQL: stmtName(pooledSchema, sqlCommit)}}, nil
		}); err == nil {
			tag, err = execResult(br, nil)
		}
		if err != nil && t.conn != nil && !t.conn.Conn().IsClosed() && t.conn.Conn().PgConn().TxStatus() != 'I' {
			_, _ = t.conn.Exec(ctx, "ROLLBACK")
		}
		if err != nil && br == nil {
			t.finish()
			return err
		}
	}
	if err == nil && tag.String() == "COMMIT" {
		t.readCommitLSN(ctx)
	}
	t.finish()
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
	t.pending = nil
	if !t.begun || t.conn == nil || t.conn.Conn().IsClosed() {
		t.finish()
		return nil
	}
	_, err := t.conn.Exec(context.Background(), "ROLLBACK")
	t.finish()
	if err != nil {
		return fmt.Errorf("postgres: rollback: %w", err)
	}
	return nil
}

// finish returns the connection to its pool, which discards it unless it
// is idle outside any transaction, and releases the tenant database.
func (t *tx) finish() {
	if t.conn != nil {
		t.conn.Release()
	}
	t.release()
}

// isCode reports whether err is a PostgreSQL error with SQLSTATE code.
func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}
