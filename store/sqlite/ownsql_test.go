package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// ownEnv returns an Env of database-mode tenants acme and bravo, each with
// a team table notes holding one row of its own, and acme's context.
func ownEnv(t *testing.T) (*storetest.Env, context.Context, context.Context) {
	t.Helper()
	e := storetest.NewEnv(t, open(t, t.TempDir(), Options{}), store.Database)
	acme, bravo := e.Tenant(t, "acme"), e.Tenant(t, "bravo")
	for ctx, body := range map[context.Context]string{acme: "acme's note", bravo: "bravo's note"} {
		err := Tx(ctx, e.Router, func(tx *sql.Tx) error {
			if _, err := tx.Exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`); err != nil {
				return err
			}
			_, err := tx.Exec(`INSERT INTO notes (body) VALUES (?)`, body)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return e, acme, bravo
}

func countNotes(t *testing.T, e *storetest.Env, ctx context.Context) int {
	t.Helper()
	var n int
	if err := ReadTx(ctx, e.Router, func(tx *sql.Tx) error {
		return tx.QueryRow(`SELECT count(*) FROM notes`).Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOwnSQLCommitsAndRollsBackWithRecords(t *testing.T) {
	e, acme, _ := ownEnv(t)
	both := func(fail bool) error {
		return e.Router.Run(acme, store.TxOptions{SQL: true}, func(stx *store.Tx) error {
			tx, err := With(stx)
			if err != nil {
				return err
			}
			if _, _, err := stx.Put(acme, "docs", "d1", []byte(`{"n":1}`), store.IfMatch{}); err != nil {
				return err
			}
			if _, err := tx.Exec(`INSERT INTO notes (body) VALUES ('with a record')`); err != nil {
				return err
			}
			if fail {
				return errors.New("changed my mind")
			}
			return nil
		})
	}
	if err := both(true); err == nil {
		t.Fatal("the failing transaction committed")
	}
	if n := countNotes(t, e, acme); n != 1 {
		t.Fatalf("after rollback: %d notes, want 1", n)
	}
	if err := e.Router.ReadTx(acme, func(tx *store.Tx) error { _, err := tx.Get(acme, "docs", "d1"); return err }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record after rollback: %v", err)
	}
	if err := both(false); err != nil {
		t.Fatal(err)
	}
	if n := countNotes(t, e, acme); n != 2 {
		t.Fatalf("after commit: %d notes, want 2", n)
	}
	var u store.Usage
	if err := e.Router.ReadTx(acme, func(tx *store.Tx) error { var err error; u, err = tx.Usage(acme); return err }); err != nil {
		t.Fatal(err)
	}
	if u.Records != 1 {
		t.Fatalf("usage after a record written beside own SQL: %+v", u)
	}
}

func TestOwnSQLIsConfinedToTheTenantsFile(t *testing.T) {
	e, acme, bravo := ownEnv(t)
	var body string
	if err := ReadTx(bravo, e.Router, func(tx *sql.Tx) error {
		return tx.QueryRow(`SELECT group_concat(body) FROM notes`).Scan(&body)
	}); err != nil || body != "bravo's note" {
		t.Fatalf("bravo sees %q (%v)", body, err)
	}
	if err := Tx(bravo, e.Router, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM notes`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := countNotes(t, e, acme); n != 1 {
		t.Fatalf("bravo's delete reached acme: %d notes", n)
	}
}

func TestOwnSQLReadTxCannotWrite(t *testing.T) {
	e, acme, _ := ownEnv(t)
	err := ReadTx(acme, e.Router, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO notes (body) VALUES ('x')`)
		return err
	})
	if err == nil {
		t.Fatal("a write in ReadTx succeeded")
	}
	if n := countNotes(t, e, acme); n != 1 {
		t.Fatalf("%d notes", n)
	}
}

func TestOwnSQLIsRefusedWhereItCannotBeConfined(t *testing.T) {
	b := open(t, t.TempDir(), Options{})
	pooled := storetest.NewEnv(t, b, store.Pooled)
	pctx := pooled.Tenant(t, "pooly")
	t.Run("a pooled tenant gets ErrIsolationUnsupported", func(t *testing.T) {
		err := Tx(pctx, pooled.Router, func(*sql.Tx) error { return nil })
		if !errors.Is(err, store.ErrIsolationUnsupported) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("without a tenant it is tenant.ErrMissing", func(t *testing.T) {
		for _, f := range []func(context.Context, *store.Router, func(*sql.Tx) error) error{Tx, ReadTx} {
			if err := f(context.Background(), pooled.Router, func(*sql.Tx) error { return nil }); !errors.Is(err, tenant.ErrMissing) {
				t.Fatalf("err = %v", err)
			}
		}
	})
	t.Run("With on a transaction without SQL is ErrNoSQL", func(t *testing.T) {
		err := pooled.Router.ReadTx(pctx, func(stx *store.Tx) error { _, err := With(stx); return err })
		if !errors.Is(err, store.ErrNoSQL) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestOwnSQLTheTeamMayUse: what a team's own SQL needs works under the
// guard.
func TestOwnSQLTheTeamMayUse(t *testing.T) {
	e, acme, _ := ownEnv(t)
	ok := []string{
		`CREATE INDEX notes_body ON notes (body)`,
		`CREATE TABLE tags (note INTEGER NOT NULL REFERENCES notes (id) ON DELETE CASCADE, tag TEXT NOT NULL)`,
		`CREATE TRIGGER notes_tag AFTER INSERT ON notes BEGIN INSERT INTO tags VALUES (new.id, 'new'); END`,
		`INSERT INTO notes (body) VALUES ('second')`,
		`CREATE VIEW tagged AS SELECT body, tag FROM notes JOIN tags ON tags.note = notes.id`,
		`CREATE VIRTUAL TABLE notes_fts USING fts5 (body)`,
		`ALTER TABLE notes ADD COLUMN done INTEGER NOT NULL DEFAULT 0`,
		`SELECT count(*) FROM records`,
		`SELECT records, bytes FROM tenant_usage`,
		`SELECT * FROM pragma_table_info('notes')`,
		`PRAGMA foreign_keys`,
		`PRAGMA user_version`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT sum(i) FROM n`,
		`DROP VIEW tagged`,
		`DELETE FROM notes WHERE body = 'second'`,
	}
	for _, q := range ok {
		if err := Tx(acme, e.Router, func(tx *sql.Tx) error {
			rows, err := tx.Query(q)
			if err != nil {
				return err
			}
			return rows.Close()
		}); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	// The guard ends with the transaction: the record API still writes.
	if err := e.Router.Tx(acme, func(tx *store.Tx) error {
		_, _, err := tx.Put(acme, "docs", "after", []byte(`{}`), store.IfMatch{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
