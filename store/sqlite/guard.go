package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"modernc.org/sqlite"
)

// ErrRefused reports a statement of a team's own SQL (in a transaction from
// BeginSQL, or a migration) that the store refused because it could reach
// beyond the tenant's own file or undo the store's guards. The error that
// wraps it says what was refused and why.
var ErrRefused = errors.New("sqlite: statement refused in a tenant's own SQL")

// The guard. Every connection the backend opens carries an SQLite
// authorizer (sqlite3_set_authorizer, through modernc's
// AuthorizerRegisterer) that SQLite consults while it compiles each
// statement — including statements it compiles on its own behalf, such as
// the ATTACH inside VACUUM and the bodies of triggers. The authorizer is a
// property of the connection, not of the SQL, so no statement can turn it
// off.
//
// Outside a guarded transaction (the record API's own transactions, where
// only the store's generated SQL runs) it refuses only ATTACH and DETACH.
// A transaction from BeginSQL and each migration transaction is guarded:
// from BEGIN to COMMIT or ROLLBACK, every statement that the store did not
// issue itself (ctx marked by own) is team SQL and gets teamPolicy. The
// store's own statements keep working; they are also the only ones taken
// from the connection's statement cache, so team SQL cannot borrow a
// statement the store compiled.

// ownTables are Bulkhead's tables in a tenant's file. Team SQL may read them
// (they hold the tenant's own data) but not write, alter, drop, index or
// put triggers on them: records are written through the record API so
// versions, quotas and usage hold; tenant_usage is the quota's ledger;
// schema_migrations is the migrations' version; tenant_events and
// tenant_event_offsets are the outbox, which only committed changes write.
var ownTables = map[string]bool{"records": true, "tenant_usage": true, "schema_migrations": true,
	"tenant_events": true, "tenant_event_offsets": true}

// inspectPragmas are the pragmas team SQL may run with or without an
// argument: they only describe the schema or check the file.
var inspectPragmas = map[string]bool{
	"table_info": true, "table_xinfo": true, "table_list": true, "index_list": true,
	"index_info": true, "index_xinfo": true, "foreign_key_list": true, "foreign_key_check": true,
	"integrity_check": true, "quick_check": true, "collation_list": true, "function_list": true,
	"module_list": true, "pragma_list": true, "compile_options": true, "database_list": true,
}

// readPragmas are settings team SQL may read (no argument) but not change.
var readPragmas = map[string]bool{
	"user_version": true, "schema_version": true, "application_id": true, "data_version": true,
	"page_count": true, "page_size": true, "freelist_count": true, "encoding": true,
	"query_only": true, "foreign_keys": true, "journal_mode": true, "synchronous": true,
}

// deniedFunctions reach outside the database or into the process.
var deniedFunctions = map[string]bool{
	"load_extension": true, "fts3_tokenizer": true, "readfile": true, "writefile": true, "edit": true,
}

// vtabModules are the virtual table modules team SQL may create tables of:
// full-text and spatial indexes, which keep their data in the tenant's file.
var vtabModules = map[string]bool{"fts5": true, "fts5vocab": true, "rtree": true, "rtree_i32": true, "geopoly": true}

// ownKey marks a context as the store's own: statements run with it are
// the store's generated SQL. Only this package can make one.
type ownKey struct{}

// guardKey marks the context of a BeginTx that starts a guarded transaction.
type guardKey struct{}

// own returns ctx marked as the store's own.
func own(ctx context.Context) context.Context { return context.WithValue(ctx, ownKey{}, true) }

// guarded returns ctx marked to begin a guarded transaction.
func guarded(ctx context.Context) context.Context {
	return context.WithValue(ctx, guardKey{}, true)
}

func isOwn(ctx context.Context) bool     { return ctx != nil && ctx.Value(ownKey{}) != nil }
func isGuarded(ctx context.Context) bool { return ctx != nil && ctx.Value(guardKey{}) != nil }

// authorize decides one action SQLite presents while compiling a
// statement. It returns "" to allow it, or why it is refused.
func authorize(guard, trusted bool, action sqlite.AuthorizerActionCode, arg1, arg2, db, trigger string) string {
	switch action {
	case sqlite.AuthAttach:
		if arg1 == "" {
			return "VACUUM rewrites the file through an attached copy"
		}
		return "ATTACH and VACUUM INTO open another file"
	case sqlite.AuthDetach:
		return "DETACH changes the databases of the connection"
	}
	if !guard || trusted && trigger == "" {
		return ""
	}
	return teamPolicy(action, arg1, arg2, db)
}

// teamPolicy decides an action of team SQL (or of a trigger): "" allows it.
func teamPolicy(action sqlite.AuthorizerActionCode, arg1, arg2, db string) string {
	lower := strings.ToLower
	ownTable := func(name string) string {
		if ownTables[lower(name)] {
			return fmt.Sprintf("%s is Bulkhead's table (team SQL may read it, not change it)", name)
		}
		return ""
	}
	switch action {
	case sqlite.AuthSelect, sqlite.AuthRead, sqlite.AuthRecursive, sqlite.AuthReindex, sqlite.AuthAnalyze:
		return ""
	case sqlite.AuthFunction:
		if deniedFunctions[lower(arg2)] {
			return arg2 + "() reaches outside the database"
		}
		return ""
	case sqlite.AuthInsert, sqlite.AuthUpdate, sqlite.AuthDelete:
		// arg1 is the table; SQLite's own bookkeeping in sqlite_master
		// (CREATE, DROP, ALTER) comes here too and stays allowed.
		return ownTable(arg1)
	case sqlite.AuthCreateTable, sqlite.AuthCreateView, sqlite.AuthDropTable, sqlite.AuthDropView:
		return ownTable(arg1)
	case sqlite.AuthCreateIndex, sqlite.AuthCreateTrigger, sqlite.AuthDropIndex, sqlite.AuthDropTrigger, sqlite.AuthAlterTable:
		return ownTable(arg2) // the table the index or trigger is on, or the altered table
	case sqlite.AuthCreateTempTable, sqlite.AuthCreateTempIndex, sqlite.AuthCreateTempTrigger, sqlite.AuthCreateTempView,
		sqlite.AuthDropTempTable, sqlite.AuthDropTempIndex, sqlite.AuthDropTempTrigger, sqlite.AuthDropTempView:
		return "temporary objects outlive the transaction on the connection and shadow Bulkhead's tables"
	case sqlite.AuthCreateVTable:
		if !vtabModules[lower(arg2)] {
			return "virtual table module " + arg2 + " is not allowed (use fts5 or rtree)"
		}
		return ""
	case sqlite.AuthDropVTable:
		return ""
	case sqlite.AuthPragma:
		name := lower(arg1)
		if inspectPragmas[name] || readPragmas[name] && arg2 == "" {
			return ""
		}
		return "PRAGMA " + arg1 + " changes the connection's guards or settings"
	case sqlite.AuthTransaction, sqlite.AuthSavepoint:
		return "the transaction is Bulkhead's: it begins, commits and rolls back the whole of it"
	}
	return fmt.Sprintf("action %d is not allowed", action)
}

// refused wraps err, from a statement the authorizer refused, with
// ErrRefused and the reason.
func refused(err error, why string) error {
	if err == nil || why == "" {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrRefused, why, err)
}
