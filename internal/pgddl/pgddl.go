// Package pgddl applies the DDL of Bulkhead's own PostgreSQL schemas (the
// catalog, the audit log) once per start, safely when several instances
// start together.
package pgddl

import (
	"context"
	"database/sql"
)

// Apply runs ddl in one transaction that first takes the advisory lock
// named lock: instances that start together would otherwise race on
// CREATE … IF NOT EXISTS and fail on the loser's side.
func Apply(ctx context.Context, db *sql.DB, lock, ddl string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, lock); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, ddl); err != nil {
		return err
	}
	return tx.Commit()
}
