package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// ownSQLNotes is the team's table of the own-SQL conformance suite.
var ownSQLNotes = []migrate.Migration{{Version: 1, Name: "notes", SQL: `CREATE TABLE notes (
	tenant_id TEXT NOT NULL,
	id TEXT NOT NULL,
	body TEXT NOT NULL,
	PRIMARY KEY (tenant_id, id))`}}

// ownSQLConformance is how the suite reaches SQLite's own SQL: a *sql.Tx on
// the tenant's own file in database mode; pooled tenants are refused.
func ownSQLConformance() storetest.OwnSQL {
	return storetest.OwnSQL{
		Migrations: ownSQLNotes,
		Insert: func(ctx context.Context, h any, id, body string) error {
			t, err := tenant.FromContext(ctx)
			if err != nil {
				return err
			}
			_, err = h.(*sql.Tx).ExecContext(ctx, `INSERT INTO notes (tenant_id, id, body) VALUES (?, ?, ?)`, t.String(), id, body)
			return err
		},
		Notes: func(ctx context.Context, h any) ([]storetest.Note, error) {
			rows, err := h.(*sql.Tx).QueryContext(ctx, `SELECT id, body FROM notes`)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var ns []storetest.Note
			for rows.Next() {
				var n storetest.Note
				if err := rows.Scan(&n.ID, &n.Body); err != nil {
					return ns, err
				}
				ns = append(ns, n)
			}
			return ns, rows.Err()
		},
		Attacks: ocAttacks(),
		Modes:   []store.Mode{store.Database},
	}
}

// ocStep is one statement of an attack, with {V} replaced by the victim's
// file, {P} by its shard's pooled file, {T} by its tenant id and {A} by the
// attacker's.
type ocStep string

// ocAttack runs its statements in order, collecting every value they
// return as text. It fails only if every statement failed, so that whatever
// did succeed is committed and checked.
func ocAttack(name string, steps ...ocStep) storetest.Attack {
	return ocAttackIn(name, false, steps...)
}

// ocAttackIn is ocAttack in a read-only transaction if readOnly is set.
func ocAttackIn(name string, readOnly bool, steps ...ocStep) storetest.Attack {
	return storetest.Attack{Name: name, ReadOnly: readOnly, Run: func(ctx context.Context, h any, v storetest.Victim) ([]string, error) {
		tx := h.(*sql.Tx)
		dir := v.Backend.(*Backend).Dir()
		attacker, _ := tenant.FromContext(ctx)
		r := strings.NewReplacer("{V}", filepath.Join(dir, "tenants", v.Tenant.StorageName()+".db"),
			"{P}", filepath.Join(dir, "pooled.db"), "{T}", v.Tenant.String(), "{A}", attacker.String())
		var seen []string
		var errs []error
		for _, step := range steps {
			got, err := ocQuery(ctx, tx, r.Replace(string(step)))
			seen = append(seen, got...)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", step, err))
			}
		}
		if len(errs) == len(steps) {
			return seen, errors.Join(errs...)
		}
		return seen, nil
	}}
}

func ocQuery(ctx context.Context, tx *sql.Tx, q string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var seen []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return seen, err
		}
		for _, x := range vals {
			if b, ok := x.([]byte); ok {
				x = string(b)
			}
			seen = append(seen, fmt.Sprint(x))
		}
	}
	return seen, rows.Err()
}

// ocAttacks are attacks from a database-mode tenant's own SQL on another
// tenant's file and on the shard's pooled file.
func ocAttacks() []storetest.Attack {
	const writeSelf ocStep = `INSERT INTO notes (tenant_id, id, body) VALUES ('{A}', 'escaped', 'escaped')`
	readV := []ocStep{`SELECT body FROM v.notes`, `SELECT tenant_id, data FROM v.records`}
	writeV := []ocStep{
		`INSERT INTO v.notes (tenant_id, id, body) VALUES ('{T}', 'forged', 'forged')`,
		`UPDATE v.notes SET body = 'pwned'`,
		`DELETE FROM v.notes WHERE id = 'n0'`,
		`UPDATE v.records SET data = '{"pwned":true}'`,
		`DELETE FROM v.records WHERE id = 'r0'`,
	}
	with := func(first ocStep, rest ...[]ocStep) []ocStep {
		out := []ocStep{first}
		for _, r := range rest {
			out = append(out, r...)
		}
		return out
	}
	return []storetest.Attack{
		ocAttack("ATTACH the victim's file, then read", with(`ATTACH DATABASE '{V}' AS v`, readV)...),
		ocAttack("ATTACH the victim's file as a read-only URI, then read", with(`ATTACH DATABASE 'file:{V}?mode=ro' AS v`, readV)...),
		ocAttack("ATTACH the victim's file, then write", with(`ATTACH DATABASE '{V}' AS v`, writeV)...),
		ocAttack("ATTACH the pooled file, then read and write its records", with(`ATTACH DATABASE '{P}' AS v`,
			[]ocStep{`SELECT tenant_id, data FROM v.records WHERE tenant_id = '{T}'`, `SELECT tenant_id, data FROM v.records`,
				`UPDATE v.records SET data = '{"pwned":true}' WHERE tenant_id = '{T}'`,
				`DELETE FROM v.records WHERE tenant_id = '{T}' AND id = 'r0'`})...),
		ocAttack("VACUUM INTO the victim's file", `VACUUM INTO '{V}'`, `VACUUM INTO 'file:{V}'`),
		ocAttack("INSERT, UPDATE and DELETE with the victim's tenant_id", ocStep(`INSERT INTO notes (tenant_id, id, body) VALUES ('{T}', 'forged', 'forged')`),
			`UPDATE notes SET body = 'pwned' WHERE tenant_id = '{T}'`, `DELETE FROM notes WHERE tenant_id = '{T}'`),
		ocAttack("load_extension", `SELECT load_extension('{V}')`),
		ocAttackIn("PRAGMA query_only off in a read-only transaction, then write", true,
			`PRAGMA query_only = 0`, `PRAGMA query_only = OFF`, writeSelf),
		ocAttackIn("COMMIT of a read-only transaction, then write outside it", true, `COMMIT`, writeSelf, `BEGIN`),
		ocAttack("COMMIT, then ATTACH the victim's file and read outside the transaction",
			with(`COMMIT`, []ocStep{`ATTACH DATABASE '{V}' AS v`}, readV, []ocStep{`BEGIN`})...),
		ocAttack("read Bulkhead's own tables", `SELECT tenant_id, data FROM records`, `SELECT * FROM tenant_usage`),
	}
}

func TestOwnSQLConformance(t *testing.T) {
	storetest.RunOwnSQL(t, func(t *testing.T) store.Backend {
		return open(t, t.TempDir(), Options{Migrations: ownSQLNotes})
	}, ownSQLConformance())
}

func TestOwnSQLMigrationsConformance(t *testing.T) {
	storetest.RunMigrations(t, storetest.Migrations{
		Open: func(t *testing.T, ms []migrate.Migration) store.Backend {
			return open(t, t.TempDir(), Options{Migrations: ms})
		},
		Carry: true,
		Modes: []store.Mode{store.Database},
	})
}

// Pooled and database tenants in two data directories behind one router.
func TestOwnSQLMixedModesAndShards(t *testing.T) {
	own := ownSQLConformance()
	storetest.RunMixed(t, func(t *testing.T) *storetest.Env {
		shards := map[string]store.Backend{
			"one": open(t, t.TempDir(), Options{Migrations: ownSQLNotes}),
			"two": open(t, t.TempDir(), Options{Migrations: ownSQLNotes}),
		}
		var places []store.Placement
		for _, shard := range []string{"one", "two"} {
			for _, mode := range []store.Mode{store.Pooled, store.Database} {
				places = append(places, store.Placement{Mode: mode, Shard: shard})
			}
		}
		return storetest.NewMixedEnv(t, shards, places)
	}, &own)
}
