package postgres

import (
	"context"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
)

// The token list statements are prepared and folded like the other list
// statements, and row-level security confines them: run by hand on a
// serving connection, a folded token read that names tenant A while it
// seals tenant B, or seals with a guessed setting name, returns nothing,
// though both tenants hold records with the same tokens.
func TestTokenListStatementsAreConfinedByRowLevelSecurity(t *testing.T) {
	b := open(t, pgtest.New(t), Options{MaxConns: 2})
	e := storetest.NewEnv(t, b, store.Pooled)
	tok := storetest.TokenOf("s", "a")
	for _, name := range []string{"tenant-a", "tenant-b"} {
		ctx := e.Tenant(t, name)
		// Envelopes are written by the sealing layer, below the Router's
		// checks (which refuse the envelope's field in a user's data).
		btx, err := b.Begin(ctx, tenant.MustParse(name), store.Pooled, true)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		err = btx.Insert(ctx, store.Record{Collection: "c", ID: "r-" + name, Data: []byte(storetest.Envelope(name, tok)),
			Version: 1, CreatedAt: now, UpdatedAt: now})
		if err == nil {
			err = btx.Commit()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	q := store.Query{Collection: "c", Filters: []store.Filter{{Field: "s", Value: "a"}}, Tokens: [][]string{{tok}}, Limit: 10}
	sql, _ := listStatement("", q)
	if !foldedReads[sql] || !ownStatementSet[sql] {
		t.Fatal("the token list statement is not among the prepared and folded reads")
	}
	ctx := context.Background()
	conn, err := b.serve.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	read := func(asked, sealed, setting string) []string {
		t.Helper()
		_, args := listStatement(asked, q)
		args = append(args, setting, pooledSchema+":"+sealed)
		rows, err := conn.Query(ctx, foldName(sql), args...)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
			var id string
			var rest [4]any
			err := r.Scan(&id, &rest[0], &rest[1], &rest[2], &rest[3])
			return id, err
		})
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := read("tenant-b", "tenant-b", b.secret); len(got) != 1 || got[0] != "r-tenant-b" {
		t.Fatalf("B's own token read: %v, want [r-tenant-b]", got)
	}
	if got := read("tenant-a", "tenant-b", b.secret); len(got) != 0 {
		t.Fatalf("a token read naming A, sealed as B: %v, want nothing", got)
	}
	if got := read("tenant-a", "tenant-a", "bulkhead.t_00000000000000000000000000000000"); len(got) != 0 {
		t.Fatalf("a token read sealed with a guessed setting name: %v, want nothing", got)
	}
}
