package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// attack is SQL an attacker runs inside tenant acme's own-SQL transaction
// (say, through an injection in the team's handler).
type attack struct {
	name string
	sql  string // {bravo}, {pooled}, {new}, {dir} are replaced by paths
	args []any
	read bool // in a read-only transaction
	// plain: the attack succeeds on a connection to acme's file that has
	// everything but the guard, which shows that the guard is what stops
	// it. Attacks SQLite refuses anyway in a transaction are not plain.
	plain bool
	// inTx: SQLite itself refuses the statement inside a transaction,
	// before the guard sees it; any error will do.
	inTx bool
}

var attacks = []attack{
	{name: "ATTACH another tenant's file", sql: `ATTACH DATABASE '{bravo}' AS b; SELECT body FROM b.notes`, plain: true},
	{name: "ATTACH another tenant's file by URI", sql: `ATTACH 'file:{bravo}?mode=ro' AS b`, plain: true},
	{name: "ATTACH the pooled file", sql: `ATTACH '{pooled}' AS p; SELECT count(*) FROM p.records`, plain: true},
	{name: "ATTACH a new file anywhere", sql: `ATTACH '{new}' AS n; CREATE TABLE n.loot AS SELECT * FROM notes`, plain: true},
	{name: "ATTACH an in-memory database", sql: `ATTACH ':memory:' AS m`, plain: true},
	{name: "ATTACH hidden after a harmless statement", sql: `SELECT 1; ATTACH '{bravo}' AS b`, plain: true},
	{name: "VACUUM INTO a file anywhere", sql: `VACUUM INTO '{new}'`, inTx: true},
	{name: "COMMIT, then VACUUM INTO a file anywhere", sql: `COMMIT; VACUUM INTO '{new}'`, plain: true},
	{name: "VACUUM", sql: `VACUUM`, inTx: true},
	{name: "DETACH", sql: `DETACH DATABASE b`},
	{name: "query_only off in a read-only transaction, then write", read: true, plain: true,
		sql: `PRAGMA query_only = 0; INSERT INTO notes (body) VALUES ('written by a reader')`},
	{name: "PRAGMA journal_mode", sql: `PRAGMA journal_mode = DELETE`},
	{name: "PRAGMA main.journal_mode off", sql: `PRAGMA main.journal_mode = OFF`},
	{name: "PRAGMA synchronous off", sql: `PRAGMA synchronous = OFF`},
	{name: "PRAGMA foreign_keys off", sql: `PRAGMA foreign_keys = OFF`, plain: true},
	{name: "PRAGMA writable_schema", sql: `PRAGMA writable_schema = ON`, plain: true},
	{name: "PRAGMA trusted_schema", sql: `PRAGMA trusted_schema = ON`, plain: true},
	{name: "PRAGMA temp_store_directory", sql: `PRAGMA temp_store_directory = '{dir}'`, plain: true},
	{name: "PRAGMA user_version set", sql: `PRAGMA user_version = 7`, plain: true},
	{name: "load_extension", sql: `SELECT load_extension('{new}')`},
	{name: "update tenant_usage (quota bypass)", sql: `UPDATE tenant_usage SET records = 0, bytes = 0`, plain: true},
	{name: "delete tenant_usage", sql: `DELETE FROM tenant_usage`, plain: true},
	{name: "insert tenant_usage", sql: `INSERT INTO tenant_usage VALUES ('acme2', 0, 0)`, plain: true},
	{name: "the store's own usage statement", sql: sqlUsageAdd, args: []any{"acme", -1, -1000}, plain: true},
	{name: "insert schema_migrations", sql: `INSERT INTO schema_migrations VALUES (99, 'fake', 0)`, plain: true},
	{name: "delete schema_migrations", sql: `DELETE FROM schema_migrations`, plain: true},
	{name: "drop schema_migrations", sql: `DROP TABLE schema_migrations`, plain: true},
	{name: "insert records behind the record API", sql: `INSERT INTO records VALUES ('acme', 'c', 'x', '{}', 1, 0, 0)`, plain: true},
	{name: "update records behind the record API", sql: `UPDATE records SET data = '{"forged":true}'`, plain: true},
	{name: "delete records behind the record API", sql: `DELETE FROM records`, plain: true},
	{name: "rename records", sql: `ALTER TABLE records RENAME TO old_records`, plain: true},
	{name: "alter tenant_usage", sql: `ALTER TABLE tenant_usage ADD COLUMN x INTEGER`, plain: true},
	{name: "drop tenant_usage", sql: `DROP TABLE tenant_usage`, plain: true},
	{name: "index on records", sql: `CREATE INDEX r_data ON records (data)`, plain: true},
	{name: "trigger on records", plain: true,
		sql: `CREATE TRIGGER r_zero AFTER INSERT ON records BEGIN UPDATE tenant_usage SET bytes = 0; END`},
	{name: "trigger on the team's table writing tenant_usage", plain: true,
		sql: `CREATE TRIGGER n_zero AFTER INSERT ON notes BEGIN UPDATE tenant_usage SET bytes = 0; END;
			INSERT INTO notes (body) VALUES ('fires the trigger')`},
	{name: "temp table shadowing tenant_usage", sql: `CREATE TEMP TABLE tenant_usage (tenant_id TEXT, records INT, bytes INT)`, plain: true},
	{name: "temp trigger on the store's table", plain: true,
		sql: `CREATE TEMP TRIGGER t_zero AFTER INSERT ON main.records BEGIN DELETE FROM main.tenant_usage; END`},
	{name: "temp view", sql: `CREATE TEMP VIEW v AS SELECT 1`, plain: true},
	{name: "virtual table of another module", sql: `CREATE VIRTUAL TABLE pages USING dbstat`, plain: true},
	{name: "COMMIT the store's transaction", sql: `COMMIT`, plain: true},
	{name: "ROLLBACK the store's transaction", sql: `ROLLBACK`, plain: true},
	{name: "SAVEPOINT", sql: `SAVEPOINT s`, plain: true},
}

// attackEnv returns ownEnv with a record and usage for acme, and the
// replacements for attack SQL.
func attackEnv(t *testing.T) (*Backend, func(string) string, context.Context, func(context.Context, bool, string, []any) error) {
	t.Helper()
	e, acme, _ := ownEnv(t)
	put(t, e, acme, "docs", "d1", `{"n":1}`)
	b := e.Backend.(*Backend)
	dir := t.TempDir()
	repl := strings.NewReplacer(
		"{bravo}", filepath.Join(b.Dir(), "tenants", fileName(tenant.MustParse("bravo"))),
		"{pooled}", filepath.Join(b.Dir(), "pooled.db"),
		"{new}", filepath.Join(dir, "new.db"),
		"{dir}", dir,
	).Replace
	exec := func(ctx context.Context, read bool, q string, args []any) error {
		f := Tx
		if read {
			f = ReadTx
		}
		return f(ctx, e.Router, func(tx *sql.Tx) error {
			rows, err := tx.Query(q, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			return errors.Join(rows.Err(), rows.Close())
		})
	}
	return b, repl, acme, exec
}

// TestOwnSQLAttacksAreRefused runs every attack in acme's transaction:
// each fails with ErrRefused and changes nothing, in acme's file or any
// other.
func TestOwnSQLAttacksAreRefused(t *testing.T) {
	b, repl, acme, exec := attackEnv(t)
	before := snapshot(t, b)
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			err := exec(acme, a.read, repl(a.sql), a.args)
			if a.inTx && err != nil {
				return
			}
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("err = %v, want ErrRefused", err)
			}
		})
	}
	if after := snapshot(t, b); after != before {
		t.Fatalf("the attacks changed the data:\nbefore %s\nafter  %s", before, after)
	}
	if _, err := os.Stat(repl("{new}")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file was written outside the tenant's own: %v", err)
	}
}

// TestAttacksWorkWithoutTheGuard runs the plain attacks on a connection to
// acme's file with the backend's own settings but no guard: they succeed,
// so TestOwnSQLAttacksAreRefused fails without the guard.
func TestAttacksWorkWithoutTheGuard(t *testing.T) {
	b, repl, _, _ := attackEnv(t)
	path := filepath.Join(b.Dir(), "tenants", fileName(tenant.MustParse("acme")))
	for _, a := range attacks {
		if !a.plain {
			continue
		}
		t.Run(a.name, func(t *testing.T) {
			db, err := sql.Open("sqlite", dsn(path, !a.read, false, b.opts.BusyTimeout))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback() }()
			q := strings.ReplaceAll(repl(a.sql), "{new}", filepath.Join(t.TempDir(), "x.db"))
			rows, err := tx.Query(q, a.args...)
			if err == nil {
				for rows.Next() {
				}
				err = errors.Join(rows.Err(), rows.Close())
			}
			if err != nil {
				t.Fatalf("without the guard: %v", err)
			}
		})
	}
}

// snapshot describes what the attacks must not change: every tenant's
// notes, acme's records, usage and migrations, the pooled file's records.
func snapshot(t *testing.T, b *Backend) string {
	t.Helper()
	var out strings.Builder
	for _, name := range []string{"acme", "bravo"} {
		h, err := b.acquire(tenant.MustParse(name))
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`SELECT group_concat(body, '|') FROM notes`,
			`SELECT group_concat(id || data || version, '|') FROM records`,
			`SELECT group_concat(tenant_id || records || '/' || bytes, '|') FROM tenant_usage`,
			`SELECT count(*) FROM schema_migrations`,
			`SELECT group_concat(type || name, '|') FROM sqlite_schema`,
		} {
			var s sql.NullString
			if err := h.read.QueryRow(q).Scan(&s); err != nil {
				b.release(h)
				t.Fatalf("%s: %s: %v", name, q, err)
			}
			out.WriteString(name + ": " + s.String + "\n")
		}
		b.release(h)
	}
	var n int
	if err := b.pooled.read.QueryRow(`SELECT count(*) FROM records`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return out.String() + "pooled records: " + string(rune('0'+n))
}

// TestVacuumIntoIsRefusedOnEveryConnection: ATTACH, and with it VACUUM
// INTO, is refused on every connection of the backend, in a guarded
// transaction or not.
func TestVacuumIntoIsRefusedOnEveryConnection(t *testing.T) {
	b, repl, _, _ := attackEnv(t)
	h, err := b.acquire(tenant.MustParse("acme"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.release(h)
	for _, db := range []*sql.DB{h.write, b.pooled.write} {
		for _, q := range []string{repl(`VACUUM INTO '{new}'`), repl(`ATTACH '{bravo}' AS b`)} {
			if _, err := db.Exec(q); !errors.Is(err, ErrRefused) {
				t.Errorf("%s: %v, want ErrRefused", q, err)
			}
		}
	}
	if _, err := os.Stat(repl("{new}")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("VACUUM INTO wrote a file: %v", err)
	}
}

func TestGuardLeavesRecordTransactionsAlone(t *testing.T) {
	// Outside own-SQL transactions only ATTACH and DETACH are refused, so
	// the store's own statements and tests' direct use of a handle work.
	for _, c := range []struct {
		guard, trusted bool
		action         string
		refused        bool
	}{
		{false, false, "update tenant_usage", false},
		{true, true, "update tenant_usage", false},
		{true, false, "update tenant_usage", true},
		{false, false, "attach", true},
		{true, true, "attach", true},
	} {
		var why string
		switch c.action {
		case "attach":
			why = authorize(c.guard, c.trusted, 24, "x.db", "", "", "")
		default:
			why = authorize(c.guard, c.trusted, 23, "tenant_usage", "bytes", "main", "")
		}
		if (why != "") != c.refused {
			t.Errorf("guard %v trusted %v %s: refused %q, want refused %v", c.guard, c.trusted, c.action, why, c.refused)
		}
	}
	_ = store.Pooled
}
