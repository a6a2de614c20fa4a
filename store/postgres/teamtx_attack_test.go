package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
)

// attempt runs sql in a savepoint of tx, rolled back to if it fails, and
// returns its error: the transaction goes on either way.
func attempt(ctx context.Context, tx pgx.Tx, sql string, args ...any) error {
	return pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		_, err := sp.Exec(ctx, sql, args...)
		return err
	})
}

// The team's pgx.Tx holds to its tenant as store.Tx does: a context naming
// another tenant is refused, and the connection is out of reach once the
// transaction is done. Statements the guard refuses stay refused however
// they are dressed; what PostgreSQL itself rejects is rejected before it runs.
func TestTeamTxHoldsToItsTenant(t *testing.T) {
	w := newWorld(t, store.Pooled, 1)
	a, b := w.e.Tenant(t, "tenant-a"), w.e.Tenant(t, "tenant-b")
	w.exec(t, b, `INSERT INTO customers (id, name) VALUES ('c1', 'B')`)
	var kept pgx.Tx
	err := Tx(a, w.e.Router, func(tx pgx.Tx) error {
		kept = tx
		if _, err := tx.Exec(b, `SELECT 1`); !errors.Is(err, store.ErrTenantMismatch) {
			t.Errorf("Exec with tenant-b's context in tenant-a's transaction: %v", err)
		}
		var n int
		if err := tx.QueryRow(b, `SELECT count(*) FROM customers`).Scan(&n); !errors.Is(err, store.ErrTenantMismatch) {
			t.Errorf("QueryRow with tenant-b's context: %d, %v", n, err)
		}
		for _, sql := range []string{";DEALLOCATE ALL", "\vDEALLOCATE ALL", "\fPREPARE x AS SELECT 1",
			"/**/DEALLOCATE ALL", "SELECT 1; DEALLOCATE ALL", "  -- x\n\tdiscard all"} {
			if err := attempt(a, tx, sql); err == nil {
				t.Errorf("%q ran", sql)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if kept.Conn() != nil {
		t.Error("the finished transaction still hands out its connection")
	}
	if _, err := kept.Exec(a, `SELECT 1`); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("Exec after the transaction: %v", err)
	}
}
