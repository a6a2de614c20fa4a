package postgres

import (
	"errors"
	"fmt"
	"strings"
)

// ErrStatementRefused reports a statement a tenant transaction does not run
// for the team: one that would end the transaction Bulkhead began
// (BEGIN, COMMIT, ROLLBACK, ...) or change the connection's prepared
// statements (PREPARE, DEALLOCATE, DISCARD). A connection serves many
// tenants one after another: a statement SQL prepared in place of one of
// Bulkhead's would run in the next tenant's transaction. Commit, roll back
// and use savepoints through the pgx.Tx instead (SQL SAVEPOINT, RELEASE and
// ROLLBACK TO are allowed).
var ErrStatementRefused = errors.New("postgres: statement refused in a tenant transaction")

// refused is the first keyword of each statement refusedStatement refuses.
var refused = map[string]bool{
	"PREPARE": true, "DEALLOCATE": true, "DISCARD": true,
	"BEGIN": true, "START": true, "COMMIT": true, "END": true, "ABORT": true, "ROLLBACK": true,
}

// refusedStatement returns an error wrapping ErrStatementRefused if sql is
// a statement a tenant transaction does not run. It reads the first
// keywords only, after white space and comments: the statement is sent
// with the extended protocol, which runs one statement, and the serving
// role cannot run DO blocks or create functions (CheckServingRole), so no
// other statement can hide one of these.
func refusedStatement(sql string) error {
	words := leadingWords(sql, 3)
	if len(words) == 0 || !refused[words[0]] {
		return nil
	}
	if words[0] == "ROLLBACK" && (len(words) > 1 && words[1] == "TO" ||
		len(words) > 2 && (words[1] == "WORK" || words[1] == "TRANSACTION") && words[2] == "TO") {
		return nil // ROLLBACK TO SAVEPOINT stays inside the transaction
	}
	return fmt.Errorf("%w: %s (use the pgx.Tx's Commit, Rollback and Begin)", ErrStatementRefused, words[0])
}

// leadingWords returns up to n leading keywords of sql, upper-cased,
// skipping white space, empty statements (";"), -- comments and nested /*
// */ comments.
func leadingWords(sql string, n int) []string {
	var words []string
	for i := 0; i < len(sql) && len(words) < n; {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == ';':
			i++ // white space, and empty statements, which PostgreSQL drops
		case strings.HasPrefix(sql[i:], "--"):
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case strings.HasPrefix(sql[i:], "/*"):
			depth := 0
			for i < len(sql) {
				if strings.HasPrefix(sql[i:], "/*") {
					depth++
					i += 2
				} else if strings.HasPrefix(sql[i:], "*/") {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_':
			j := i
			for j < len(sql) && (sql[j] >= 'a' && sql[j] <= 'z' || sql[j] >= 'A' && sql[j] <= 'Z' || sql[j] == '_' || sql[j] >= '0' && sql[j] <= '9') {
				j++
			}
			words = append(words, strings.ToUpper(sql[i:j]))
			i = j
		default:
			return words // punctuation, a quoted name, a number: no keyword follows that matters
		}
	}
	return words
}
