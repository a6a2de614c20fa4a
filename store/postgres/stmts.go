package postgres

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
)

// Prepared statements.
//
// Every statement a tenant transaction runs is a prepared statement. A
// connection serves many tenants one after another, so a statement that
// one transaction's SQL prepared in place of Bulkhead's would run in the
// next tenant's transaction. PostgreSQL cuts every statement name to 63
// bytes, so long names do not prevent that; instead team SQL may not
// PREPARE, DEALLOCATE or DISCARD (guard.go), the serving role may run no DO
// block and create no function (CheckServingRole), and so no SQL it runs
// can prepare a statement at all. (A statement dropped anyway makes the next
// first batch on the connection fail with SQLSTATE 26000: tx.sendBatch
// closes the connection and retries on a fresh one.)
//
// PostgreSQL resolves a statement's unqualified table names in the
// search_path of the transaction that runs it, and plans it again whenever
// that differs from the last run. In schema "bulkhead" (pooled tenants, and
// every tenant database) Bulkhead's statements name their tables (qualify)
// and are prepared when a serving connection opens (prepareStatements);
// the team's statements are prepared on first use on a connection, at most
// maxStatements of them, the least recently used deallocated first.
// Schema tenants share their statements, Bulkhead's (unqualified) and the
// team's, one per text on a connection, prepared on first use in the
// search_path of the schema at hand; PostgreSQL plans one again when the
// next transaction's schema differs. One statement per schema would not
// fit a connection that serves thousands of them.

// stmtName is the name a statement of unit is prepared under. The names of
// Bulkhead's own statements are computed once (ownNames).
func stmtName(unit, sql string) string {
	if unit == pooledSchema {
		if n, ok := ownNames[sql]; ok {
			return n
		}
	}
	return hashName(unit, sql)
}

func hashName(unit, sql string) string {
	sum := sha256.Sum256([]byte(unit + "\x00" + sql))
	return "bulkhead_" + hex.EncodeToString(sum[:])
}

// maxStatements bounds the statements prepared on first use on one
// connection.
const maxStatements = 256

// stmtsKey is the connection's *stmtLRU in its pgconn CustomData.
const stmtsKey = "bulkhead.statements"

// stmtLRU is a connection's statements prepared on first use, most
// recently used first.
type stmtLRU struct {
	order *list.List               // of names
	byKey map[string]*list.Element // name → its element
}

// name returns the prepared statement's name for sql in t's unit,
// preparing it on t's connection if needed.
func (t *tx) name(ctx context.Context, sql string) (string, error) {
	kind := t.unit // "bulkhead": pooled tenants and tenant databases
	if kind != pooledSchema {
		kind = "schema" // every schema tenant shares the statement: see above
	}
	name := stmtName(kind, sql)
	if kind == pooledSchema && ownStatementSet[sql] {
		return name, nil // prepared when the connection opened
	}
	conn := t.conn.Conn()
	data := conn.PgConn().CustomData()
	lru, _ := data[stmtsKey].(*stmtLRU)
	if lru == nil {
		lru = &stmtLRU{order: list.New(), byKey: make(map[string]*list.Element)}
		data[stmtsKey] = lru
	}
	if e, ok := lru.byKey[name]; ok {
		lru.order.MoveToFront(e)
		return name, nil
	}
	text := sql
	if kind == pooledSchema && ownStatementSet[sql] {
		text = qualify(t.unit, sql)
	}
	if err := t.prepare(ctx, name, text); err != nil {
		return "", err
	}
	lru.byKey[name] = lru.order.PushFront(name)
	for lru.order.Len() > maxStatements {
		old := lru.order.Back()
		lru.order.Remove(old)
		delete(lru.byKey, old.Value.(string))
		if err := conn.Deallocate(ctx, old.Value.(string)); err != nil {
			return "", err
		}
	}
	return name, nil
}

// prepare prepares sql as name on t's connection with the unit's
// search_path: the transaction's own once it has begun, the session's
// while it is prepared otherwise.
func (t *tx) prepare(ctx context.Context, name, sql string) error {
	conn := t.conn.Conn()
	if t.write && t.begun {
		_, err := conn.Prepare(ctx, name, sql)
		return err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_catalog.set_config('search_path', $1, false)`, unitPath(t.unit)); err != nil {
		return err
	}
	_, err := conn.Prepare(ctx, name, sql)
	if _, rerr := conn.Exec(ctx, `RESET search_path`); err == nil {
		err = rerr
	}
	return err
}

// ownTable finds the tables of Bulkhead's own statements.
var ownTable = regexp.MustCompile(`\b(FROM|INTO|UPDATE)\s+(records|tenant_usage|tenant_events|tenant_event_offsets)\b`)

// qualify names the tables of one of Bulkhead's own statements in unit, so
// that the statement does not depend on search_path: a transaction that
// runs no team SQL need not set it.
func qualify(unit, sql string) string {
	return ownTable.ReplaceAllString(sql, "$1 "+ident(unit)+".$2")
}

// unitPath is the search_path of a unit's transactions. It does not name
// pg_temp: the serving role may create no temporary object
// (CheckServingRole), and naming pg_temp when the session has no temporary
// schema makes PostgreSQL look for one on every lookup, which tripled the
// cost of a point read.
func unitPath(unit string) string { return ident(unit) }

// ownStatementSet holds ownStatements; ownNames their names in schema
// "bulkhead", foldNames those of their folded forms (fold.go).
var ownStatementSet, ownNames, foldNames = func() (map[string]bool, map[string]string, map[string]string) {
	set, names, folds := make(map[string]bool), make(map[string]string), make(map[string]string)
	for _, q := range ownStatements {
		set[q] = true
		names[q] = hashName(pooledSchema, q)
		folds[q] = hashName("fold", q)
	}
	return set, names, folds
}()
