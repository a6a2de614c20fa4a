package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TestStatementCacheServesNestedUse runs a statement again while its first
// result set is still open on the same connection: each must get its own
// prepared statement and read its own rows.
func TestStatementCacheServesNestedUse(t *testing.T) {
	h := newHandle(tenant.ID{}, filepath.Join(t.TempDir(), "x.db"), true, time.Second, 2)
	defer h.close()
	ctx := context.Background()
	if err := h.createSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.write.Exec(`INSERT INTO records VALUES ('t','c','a','{}',1,0,0), ('t','c','b','{}',1,0,0), ('t','c','c','{}',1,0,0)`); err != nil {
		t.Fatal(err)
	}
	const q = `SELECT id FROM records WHERE tenant_id = ?1 AND id > ?2 ORDER BY id`
	tx, err := h.write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	collect := func(rows *sql.Rows, n int) []string {
		var out []string
		for len(out) < n && rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out = append(out, id)
		}
		return out
	}
	outer, err := tx.Query(q, "t", "")
	if err != nil {
		t.Fatal(err)
	}
	first := collect(outer, 1)
	inner, err := tx.Query(q, "t", "a") // same text while outer is open
	if err != nil {
		t.Fatal(err)
	}
	nested := collect(inner, 10)
	_ = inner.Close()
	rest := collect(outer, 10)
	_ = outer.Close()
	if got := append(first, rest...); len(got) != 3 || got[0] != "a" || got[2] != "c" {
		t.Fatalf("outer rows %v, want [a b c]", got)
	}
	if len(nested) != 2 || nested[0] != "b" {
		t.Fatalf("nested rows %v, want [b c]", nested)
	}
	for i := 0; i < 3; i++ { // and the cached statement is reused afterwards
		var n int
		if err := tx.QueryRow(`SELECT count(*) FROM records WHERE tenant_id = ?1 AND id > ?2`, "t", "").Scan(&n); err != nil || n != 3 {
			t.Fatalf("count %d %v", n, err)
		}
	}
}
