package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/bulkhead-dev/bulkhead/store"
)

// The schema of every file, pooled or per tenant: tenant_id leads the
// primary key, so ids are unique per tenant and every lookup is a key range
// of one tenant.
const sqlSchema = `CREATE TABLE IF NOT EXISTS records (
	tenant_id  TEXT    NOT NULL,
	collection TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	data       TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, collection, id)
) STRICT, WITHOUT ROWID`

// Every statement binds the transaction's tenant as ?1.
const (
	sqlGet = `SELECT data, version, created_at, updated_at FROM records
		WHERE tenant_id = ?1 AND collection = ?2 AND id = ?3`
	sqlInsert = `INSERT INTO records (tenant_id, collection, id, data, version, created_at, updated_at)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)`
	sqlUpdate = `UPDATE records SET data = ?4, version = ?5, updated_at = ?6
		WHERE tenant_id = ?1 AND collection = ?2 AND id = ?3 AND version = ?7`
	sqlDelete = `DELETE FROM records
		WHERE tenant_id = ?1 AND collection = ?2 AND id = ?3`
	sqlCollections = `SELECT collection, count(*) FROM records
		WHERE tenant_id = ?1 GROUP BY collection ORDER BY collection`
	sqlDropTenant = `DELETE FROM records WHERE tenant_id = ?1`
)

// fnJSONNumber is the SQL function that parses a JSON number's text exactly
// as store.Filter.Matches does (strconv.ParseFloat), or yields NULL.
// SQLite's own conversion rounds some long decimals differently.
const fnJSONNumber = "bulkhead_json_number"

func jsonNumber(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	var s string
	switch v := args[0].(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return nil, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, nil
	}
	return f, nil
}

// listSQL returns the list statement for a query with n filters. Its
// parameters are ?1 tenant, ?2 collection, ?3 the id to start after ("" for
// the first page), four per filter (JSON path, value as text, as number or
// NULL, as boolean literal or NULL), then the limit. A filter matches as
// store.Filter.Matches does: a string equal to the value, a number
// numerically equal to it, or the boolean it names; anything else (missing,
// null, object, array) does not match.
func listSQL(n int) string {
	var b strings.Builder
	b.WriteString(`SELECT id, data, version, created_at, updated_at FROM records
		WHERE tenant_id = ?1 AND collection = ?2 AND id > ?3`)
	p := 4
	for range n {
		b.WriteString(`
		AND ` + plainCond(p))
		p += 4
	}
	fmt.Fprintf(&b, `
		ORDER BY id LIMIT ?%d`, p)
	return b.String()
}

// plainCond is the condition of one filter whose four parameters start at
// ?p (see listSQL).
func plainCond(p int) string {
	return fmt.Sprintf(`CASE json_type(data, ?%[1]d)
			WHEN 'text' THEN json_extract(data, ?%[1]d) = ?%[2]d
			WHEN 'integer' THEN %[5]s(data -> ?%[1]d) = ?%[3]d
			WHEN 'real' THEN %[5]s(data -> ?%[1]d) = ?%[3]d
			WHEN 'true' THEN ?%[4]d = 'true'
			WHEN 'false' THEN ?%[4]d = 'false'
			ELSE 0 END`, p, p+1, p+2, p+3, fnJSONNumber)
}

// listQueries holds listSQL(n) for n up to store.MaxFilters.
var listQueries = func() []string {
	qs := make([]string, store.MaxFilters+1)
	for n := range qs {
		qs[n] = listSQL(n)
	}
	return qs
}()

func listQuery(n int) string {
	if n < len(listQueries) {
		return listQueries[n]
	}
	return listSQL(n)
}

// filterArgs returns the four parameters of f for listSQL.
func filterArgs(f store.Filter) []any {
	var num, lit any
	if n, ok := f.Number(); ok {
		num = n
	}
	if v, ok := f.Bool(); ok {
		lit = strconv.FormatBool(v)
	}
	return []any{f.Path(), f.Value, num, lit}
}

// tx is a transaction confined to one tenant: the tenant is bound into
// every statement it runs, and it can be neither changed nor omitted.
type tx struct {
	tx      *sql.Tx
	tenant  string
	h       *handle
	write   bool
	release func(*handle) // nil for the pooled file
	done    bool
}

var errReadOnly = errors.New("sqlite: write in a read-only transaction")

func micros(t time.Time) int64 { return t.UnixMicro() }
func fromMicros(us int64) time.Time {
	return time.UnixMicro(us).UTC()
}

// Get implements store.BackendTx.
func (t *tx) Get(ctx context.Context, collection, id string) (store.Record, error) {
	rec := store.Record{ID: id, Collection: collection}
	var data []byte
	var created, updated int64
	err := t.tx.QueryRowContext(own(ctx), sqlGet, t.tenant, collection, id).
		Scan(&data, &rec.Version, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Record{}, store.ErrNotFound
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite: get record: %w", err)
	}
	rec.Data, rec.CreatedAt, rec.UpdatedAt = data, fromMicros(created), fromMicros(updated)
	return rec, nil
}

// Insert implements store.BackendTx.
func (t *tx) Insert(ctx context.Context, rec store.Record) error {
	if !t.write {
		return errReadOnly
	}
	_, err := t.tx.ExecContext(own(ctx), sqlInsert, t.tenant, rec.Collection, rec.ID,
		string(rec.Data), rec.Version, micros(rec.CreatedAt), micros(rec.UpdatedAt))
	if isConstraint(err) {
		return fmt.Errorf("%w: %s/%s", store.ErrConflict, rec.Collection, rec.ID)
	}
	if err != nil {
		return fmt.Errorf("sqlite: insert record: %w", err)
	}
	return nil
}

// Update implements store.BackendTx.
func (t *tx) Update(ctx context.Context, rec store.Record, prev int64) error {
	if !t.write {
		return errReadOnly
	}
	res, err := t.tx.ExecContext(own(ctx), sqlUpdate, t.tenant, rec.Collection, rec.ID,
		string(rec.Data), rec.Version, micros(rec.UpdatedAt), prev)
	if err != nil {
		return fmt.Errorf("sqlite: update record: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: update record: %w", err)
	} else if n == 0 {
		return fmt.Errorf("%w: %s/%s changed", store.ErrConflict, rec.Collection, rec.ID)
	}
	return nil
}

// Delete implements store.BackendTx.
func (t *tx) Delete(ctx context.Context, collection, id string) error {
	if !t.write {
		return errReadOnly
	}
	res, err := t.tx.ExecContext(own(ctx), sqlDelete, t.tenant, collection, id)
	if err != nil {
		return fmt.Errorf("sqlite: delete record: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: delete record: %w", err)
	} else if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// List implements store.BackendTx.
func (t *tx) List(ctx context.Context, q store.Query) ([]store.Record, error) {
	if err := q.CheckTokens(); err != nil {
		return nil, fmt.Errorf("sqlite: list records: %w", err)
	}
	query, args := listStatement(t.tenant, q)
	rows, err := t.tx.QueryContext(own(ctx), query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list records: %w", err)
	}
	defer rows.Close()
	var recs []store.Record
	for rows.Next() {
		rec := store.Record{Collection: q.Collection}
		var data []byte
		var created, updated int64
		if err := rows.Scan(&rec.ID, &data, &rec.Version, &created, &updated); err != nil {
			return nil, fmt.Errorf("sqlite: list records: %w", err)
		}
		rec.Data, rec.CreatedAt, rec.UpdatedAt = json.RawMessage(data), fromMicros(created), fromMicros(updated)
		recs = append(recs, rec)
		if len(recs)%store.YieldEvery == 0 {
			// A long page must not hold this P for a whole scheduler
			// slice (10 ms) while other tenants' requests wait in its
			// run queue: step aside now and then (see store.YieldEvery).
			runtime.Gosched()
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list records: %w", err)
	}
	return recs, nil
}

// Collections implements store.BackendTx.
func (t *tx) Collections(ctx context.Context) ([]store.Collection, error) {
	rows, err := t.tx.QueryContext(own(ctx), sqlCollections, t.tenant)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list collections: %w", err)
	}
	defer rows.Close()
	var cs []store.Collection
	for rows.Next() {
		var c store.Collection
		if err := rows.Scan(&c.Name, &c.Records); err != nil {
			return nil, fmt.Errorf("sqlite: list collections: %w", err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list collections: %w", err)
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
	if err := t.tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
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
	if err := t.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("sqlite: rollback: %w", err)
	}
	return nil
}

func (t *tx) finish() {
	if t.release != nil {
		t.release(t.h)
	}
}

// isConstraint reports whether err is an SQLite constraint violation.
func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}
