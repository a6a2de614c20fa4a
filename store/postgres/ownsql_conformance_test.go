package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// ownSQLNotes is the team's table of the own-SQL conformance suite.
var ownSQLNotes = []migrate.Migration{{Version: 1, Name: "notes", SQL: `CREATE TABLE notes (
	tenant_id text NOT NULL,
	id text NOT NULL,
	body text NOT NULL,
	PRIMARY KEY (tenant_id, id))`}}

// ownSQLConformance is how the suite reaches PostgreSQL's own SQL: a pgx.Tx
// in every mode, and the attacks of an injection in a team's handler.
func ownSQLConformance() storetest.OwnSQL {
	return storetest.OwnSQL{
		Migrations: ownSQLNotes,
		Insert: func(ctx context.Context, h any, id, body string) error {
			t, err := tenant.FromContext(ctx)
			if err != nil {
				return err
			}
			_, err = h.(pgx.Tx).Exec(ctx, `INSERT INTO notes (tenant_id, id, body) VALUES ($1, $2, $3)`, t.String(), id, body)
			return err
		},
		Notes: func(ctx context.Context, h any) ([]storetest.Note, error) {
			rows, err := h.(pgx.Tx).Query(ctx, `SELECT id, body FROM notes`)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storetest.Note, error) {
				var n storetest.Note
				err := r.Scan(&n.ID, &n.Body)
				return n, err
			})
		},
		Attacks: ocAttacks(),
		Modes:   []store.Mode{store.Pooled, store.Schema, store.Database},
	}
}

// ocStep is one step of an attack; it returns what it read.
type ocStep func(ctx context.Context, tx pgx.Tx, v storetest.Victim) ([]string, error)

// stmt is a step running sql with {V} replaced by the victim's id and {S}
// by its schema name (quoted), collecting every value it returns as text.
func ocStmt(sql string) ocStep {
	return func(ctx context.Context, tx pgx.Tx, v storetest.Victim) ([]string, error) {
		attacker, _ := tenant.FromContext(ctx)
		q := strings.NewReplacer("{V}", v.Tenant.String(), "{S}", pgx.Identifier{v.Tenant.StorageName()}.Sanitize(),
			"{A}", attacker.String()).Replace(sql)
		rows, err := tx.Query(ctx, q)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var seen []string
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				return seen, err
			}
			for _, x := range vals {
				seen = append(seen, fmt.Sprint(x))
			}
		}
		return seen, rows.Err()
	}
}

// ocAttack runs steps in order, each in a savepoint so that one refused
// step does not keep the next from trying. It fails only if every step
// failed, so that whatever did succeed is committed and checked. At the end
// it puts search_path back, so that the suite's own read of the attacker's
// notes resolves (a failed read would abort the transaction and with it
// the attack's writes).
func ocAttack(name string, steps ...ocStep) storetest.Attack {
	return storetest.Attack{Name: name, Run: func(ctx context.Context, h any, v storetest.Victim) ([]string, error) {
		tx := h.(pgx.Tx)
		var path string
		if err := tx.QueryRow(ctx, `SELECT current_setting('search_path')`).Scan(&path); err != nil {
			return nil, err
		}
		defer func() {
			_ = pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
				_, err := sp.Exec(ctx, `SELECT set_config('search_path', $1, true)`, path)
				return err
			})
		}()
		var seen []string
		var errs []error
		for _, step := range steps {
			sp, err := tx.Begin(ctx)
			if err != nil {
				return seen, err
			}
			got, err := step(ctx, sp, v)
			seen = append(seen, got...)
			if err != nil {
				errs = append(errs, err)
				if rerr := sp.Rollback(ctx); rerr != nil {
					return seen, errors.Join(append(errs, rerr)...)
				}
				continue
			}
			if err := sp.Commit(ctx); err != nil {
				return seen, err
			}
		}
		if len(errs) == len(steps) {
			return seen, errors.Join(errs...)
		}
		return seen, nil
	}}
}

// ocRawAttack runs steps in order on the transaction itself, without
// savepoints (which a read-only transaction may not offer, and which a step
// ending the transaction would break), going on after a failed step.
func ocRawAttack(name string, readOnly bool, steps ...ocStep) storetest.Attack {
	return storetest.Attack{Name: name, ReadOnly: readOnly, Run: func(ctx context.Context, h any, v storetest.Victim) ([]string, error) {
		var seen []string
		var errs []error
		for _, step := range steps {
			got, err := step(ctx, h.(pgx.Tx), v)
			seen = append(seen, got...)
			if err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) == len(steps) {
			return seen, errors.Join(errs...)
		}
		return seen, nil
	}}
}

var (
	ocWriteSelf = ocStmt(`INSERT INTO notes (tenant_id, id, body) VALUES ('{A}', 'escaped', 'escaped')`)
	ocReadOwn   = []ocStep{
		ocStmt(`SELECT body FROM notes`),
		ocStmt(`SELECT tenant_id, data::text FROM records`),
	}
	ocReadVictimSchema = []ocStep{
		ocStmt(`SELECT body FROM {S}.notes`),
		ocStmt(`SELECT tenant_id, data::text FROM {S}.records`),
	}
	ocReadPooled = []ocStep{
		ocStmt(`SELECT body FROM bulkhead.notes`),
		ocStmt(`SELECT tenant_id, data::text FROM bulkhead.records`),
	}
	ocForge = ocStmt(`SELECT set_config('bulkhead.tenant', '{V}', true)`)
)

func ocSteps(groups ...any) []ocStep {
	var out []ocStep
	for _, g := range groups {
		switch g := g.(type) {
		case ocStep:
			out = append(out, g)
		case []ocStep:
			out = append(out, g...)
		}
	}
	return out
}

// ocAttacks are the attacks of issue 9 that need nothing but the
// handle: forged settings, search_path, qualified names, writes with
// another tenant_id, roles, temporary functions, COPY, prepared statements
// and the statistics catalog.
func ocAttacks() []storetest.Attack {
	write := func(where string) []ocStep {
		return []ocStep{
			ocStmt(`INSERT INTO ` + where + `notes (tenant_id, id, body) VALUES ('{V}', 'forged', 'forged')`),
			ocStmt(`INSERT INTO ` + where + `records (tenant_id, collection, id, data, version, created_at, updated_at)
				VALUES ('{V}', 'notes', 'forged', '{}', 1, now(), now())`),
			ocStmt(`UPDATE ` + where + `notes SET body = 'pwned' WHERE tenant_id = '{V}'`),
			ocStmt(`UPDATE ` + where + `records SET data = '{"pwned":true}' WHERE tenant_id = '{V}'`),
			ocStmt(`DELETE FROM ` + where + `notes WHERE tenant_id = '{V}' AND id = 'n0'`),
			ocStmt(`DELETE FROM ` + where + `records WHERE tenant_id = '{V}' AND id = 'r0'`),
		}
	}
	return []storetest.Attack{
		ocAttack("set_config of the tenant, local to the transaction, then read", ocSteps(ocForge, ocReadOwn)...),
		ocAttack("set_config of the tenant, session-wide, then read",
			ocSteps(ocStmt(`SELECT set_config('bulkhead.tenant', '{V}', false)`), ocReadOwn)...),
		ocAttack("SET LOCAL of the tenant, then read", ocSteps(ocStmt(`SET LOCAL bulkhead.tenant = '{V}'`), ocReadOwn)...),
		ocAttack("SET of the tenant, then read", ocSteps(ocStmt(`SET bulkhead.tenant = '{V}'`), ocReadOwn)...),
		ocAttack("RESET of the tenant, then read", ocSteps(ocStmt(`RESET bulkhead.tenant`), ocReadOwn, ocReadPooled)...),
		ocAttack("RESET ALL, then read", ocSteps(ocStmt(`RESET ALL`), ocReadOwn, ocReadPooled)...),
		ocAttack("DISCARD ALL, then read", ocSteps(ocStmt(`DISCARD ALL`), ocReadOwn)...),
		ocAttack("every bulkhead setting cleared, then the tenant forged and read", ocSteps(
			ocStmt(`SELECT set_config(name, '', true) FROM pg_settings WHERE name LIKE 'bulkhead.%'`), ocForge, ocReadOwn)...),
		ocAttack("SET LOCAL search_path to the victim's schema, then read",
			ocSteps(ocStmt(`SET LOCAL search_path = {S}`), ocReadOwn)...),
		ocAttack("forged tenant and search_path to the victim's schema, then read", ocSteps(
			ocStmt(`SELECT set_config('bulkhead.tenant', '{V}', true), set_config('search_path', '{S}', true)`), ocReadOwn)...),
		ocAttack("qualified names into the victim's schema", ocReadVictimSchema...),
		ocAttack("forged tenant and qualified names into the victim's schema", ocSteps(ocForge, ocReadVictimSchema)...),
		ocAttack("qualified names into the pooled schema", ocReadPooled...),
		ocAttack("forged tenant and qualified names into the pooled schema", ocSteps(ocForge, ocReadPooled)...),
		ocAttack("INSERT, UPDATE and DELETE with the victim's tenant_id", write("")...),
		ocAttack("INSERT, UPDATE and DELETE with the victim's tenant_id after forging the tenant", ocSteps(ocForge, write(""))...),
		ocAttack("INSERT, UPDATE and DELETE in the victim's schema after forging the tenant",
			ocSteps(ocForge, write(`{S}.`))...),
		ocAttack("INSERT, UPDATE and DELETE in the pooled schema after forging the tenant",
			ocSteps(ocForge, write(`bulkhead.`))...),
		ocAttack("SET ROLE to the tables' owner, then read", ocSteps(
			ocSetRoleToOwner("SET ROLE "), ocReadOwn, ocReadVictimSchema, ocReadPooled)...),
		ocAttack("SET SESSION AUTHORIZATION to the tables' owner, then read", ocSteps(
			ocSetRoleToOwner("SET SESSION AUTHORIZATION "), ocReadOwn, ocReadVictimSchema, ocReadPooled)...),
		ocAttack("a temporary function in pg_temp reads after forging the tenant", ocSteps(
			ocStmt(`CREATE FUNCTION pg_temp.bh_peek() RETURNS SETOF text LANGUAGE sql AS 'SELECT body FROM notes UNION ALL SELECT data::text FROM records'`),
			ocForge, ocStmt(`SELECT pg_temp.bh_peek()`))...),
		ocAttack("temporary functions in pg_temp shadow current_setting, then read", ocSteps(
			ocStmt(`CREATE FUNCTION pg_temp.current_setting(text, boolean) RETURNS text LANGUAGE sql AS 'SELECT ''{V}''::text'`),
			ocStmt(`CREATE FUNCTION pg_temp.current_setting(text) RETURNS text LANGUAGE sql AS 'SELECT ''{V}''::text'`),
			ocStmt(`SELECT set_config('search_path', 'pg_temp, ' || current_setting('search_path'), true)`),
			ocReadOwn, ocReadPooled)...),
		ocAttack("COPY out after forging the tenant", ocSteps(ocForge,
			ocCopyOut(`COPY (SELECT body FROM notes) TO STDOUT`), ocCopyOut(`COPY records TO STDOUT`),
			ocCopyOut(`COPY (SELECT data FROM bulkhead.records) TO STDOUT`))...),
		ocAttack("a statement prepared before forging the tenant, executed after", ocSteps(
			ocStmt(`PREPARE bh_peek AS SELECT body FROM notes UNION ALL SELECT data::text FROM records`),
			ocForge, ocStmt(`EXECUTE bh_peek`), ocStmt(`DEALLOCATE bh_peek`))...),
		ocRawAttack("SET TRANSACTION READ WRITE in a read-only transaction, then write", true,
			ocStmt(`SET TRANSACTION READ WRITE`), ocWriteSelf),
		ocRawAttack("transaction_read_only and default_transaction_read_only turned off, then write", true,
			ocStmt(`SELECT set_config('transaction_read_only', 'off', true)`),
			ocStmt(`SET default_transaction_read_only = off`), ocWriteSelf),
		ocRawAttack("COMMIT of a read-only transaction, then write outside it", true,
			ocStmt(`COMMIT`), ocWriteSelf, ocStmt(`BEGIN`)),
		ocRawAttack("COMMIT, then forge the tenant, read and write outside the transaction", false, ocSteps(
			ocStmt(`COMMIT`), ocStmt(`SELECT set_config('bulkhead.tenant', '{V}', false)`), ocReadOwn, ocReadPooled,
			ocStmt(`INSERT INTO notes (tenant_id, id, body) VALUES ('{V}', 'forged', 'forged')`), ocStmt(`BEGIN`))...),
		ocRawAttack("ROLLBACK, then read and write outside the transaction", false, ocSteps(
			ocStmt(`ROLLBACK`), ocReadOwn, ocReadVictimSchema, ocReadPooled,
			ocStmt(`INSERT INTO notes (tenant_id, id, body) VALUES ('{V}', 'forged', 'forged')`), ocStmt(`BEGIN`))...),
		ocAttack("the statistics catalog", ocSteps(
			ocStmt(`SELECT coalesce(most_common_vals::text, '') FROM pg_stats WHERE tablename IN ('notes', 'records')`),
			ocStmt(`SELECT coalesce(histogram_bounds::text, '') FROM pg_stats WHERE tablename IN ('notes', 'records')`))...),
	}
}

// ocSetRoleToOwner switches (with verb) to the owner of the table notes.
func ocSetRoleToOwner(verb string) ocStep {
	return func(ctx context.Context, tx pgx.Tx, _ storetest.Victim) ([]string, error) {
		var owner string
		if err := tx.QueryRow(ctx, `SELECT tableowner FROM pg_tables WHERE tablename = 'notes' LIMIT 1`).Scan(&owner); err != nil {
			return nil, err
		}
		_, err := tx.Exec(ctx, verb+pgx.Identifier{owner}.Sanitize())
		return nil, err
	}
}

// ocCopyOut runs a COPY ... TO STDOUT and returns its lines.
func ocCopyOut(sql string) ocStep {
	return func(ctx context.Context, tx pgx.Tx, _ storetest.Victim) ([]string, error) {
		var buf bytes.Buffer
		_, err := tx.Conn().PgConn().CopyTo(ctx, &buf, sql)
		return strings.Split(buf.String(), "\n"), err
	}
}

// openOwnSQL opens a backend for shard name on env with the team's notes.
func openOwnSQL(t *testing.T, env pgtest.Env, name string) *Backend {
	t.Helper()
	b, err := Open(context.Background(), Shard{Name: name, URL: env.ServeURL, AdminURL: env.AdminURL},
		Options{DatabasePrefix: env.Prefix, MaxConns: 4, Migrations: ownSQLNotes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestOwnSQLConformance(t *testing.T) {
	storetest.RunOwnSQL(t, func(t *testing.T) store.Backend {
		return openOwnSQL(t, pgtest.New(t), storetest.Shard)
	}, ownSQLConformance())
}

func TestOwnSQLMigrationsConformance(t *testing.T) {
	storetest.RunMigrations(t, storetest.Migrations{
		Open: func(t *testing.T, ms []migrate.Migration) store.Backend {
			return open(t, pgtest.New(t), Options{Migrations: ms})
		},
		Carry: true,
		Modes: []store.Mode{store.Pooled, store.Schema, store.Database},
	})
}

// Tenants in all three modes on two shards (two databases of the server)
// behind one router.
func TestOwnSQLMixedModesAndShards(t *testing.T) {
	own := ownSQLConformance()
	storetest.RunMixed(t, func(t *testing.T) *storetest.Env {
		shards := map[string]store.Backend{
			"one": openOwnSQL(t, pgtest.New(t), "one"),
			"two": openOwnSQL(t, pgtest.New(t), "two"),
		}
		var places []store.Placement
		for _, shard := range []string{"one", "two"} {
			for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
				places = append(places, store.Placement{Mode: mode, Shard: shard})
			}
		}
		return storetest.NewMixedEnv(t, shards, places)
	}, &own)
}
