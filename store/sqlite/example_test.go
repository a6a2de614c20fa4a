package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// places is a placement source for the examples; the catalog is the
// production one.
type places map[tenant.ID]store.Placement

func (p places) Placement(_ context.Context, id tenant.ID) (store.Placement, error) {
	if pl, ok := p[id]; ok {
		return pl, nil
	}
	return store.Placement{}, fmt.Errorf("%w %q", store.ErrUnknownTenant, id)
}

// openExample opens a backend in a new directory with the team's
// migrations, and a router with acme in database mode and globex pooled.
func openExample(dir string, ms []migrate.Migration) *store.Router {
	be, err := sqlite.Open(dir, sqlite.Options{Migrations: ms})
	if err != nil {
		log.Fatal(err)
	}
	p := places{
		tenant.MustParse("acme"):   {Mode: store.Database, Shard: "local"},
		tenant.MustParse("globex"): {Mode: store.Pooled, Shard: "local"},
	}
	router, err := store.NewRouter(store.Config{Placements: p, Backends: map[string]store.Backend{"local": be}})
	if err != nil {
		log.Fatal(err)
	}
	for id, pl := range p {
		if err := router.Provision(context.Background(), id, pl); err != nil {
			log.Fatal(err)
		}
	}
	return router
}

// The team's own table lives in each database-mode tenant's file, created
// by its migrations when the tenant is provisioned. Tx and ReadTx hand out
// a *sql.Tx on the file of the tenant in the context.
func ExampleTx() {
	dir, _ := os.MkdirTemp("", "bulkhead-example")
	defer os.RemoveAll(dir)
	ms := []migrate.Migration{ // usually migrate.LoadDir(migrationsFS, "migrations")
		{Version: 1, Name: "create_notes", SQL: `CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL) STRICT`},
	}
	router := openExample(dir, ms)
	defer router.Close()

	ctx := tenant.WithID(context.Background(), tenant.MustParse("acme"))
	err := sqlite.Tx(ctx, router, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO notes (title) VALUES ('hello'), ('world')`)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	err = sqlite.ReadTx(ctx, router, func(tx *sql.Tx) error {
		var n int
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM notes`).Scan(&n)
		fmt.Println("acme has", n, "notes")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	// A pooled tenant shares one file whose statements the store writes;
	// it runs no own SQL.
	pooled := tenant.WithID(context.Background(), tenant.MustParse("globex"))
	err = sqlite.Tx(pooled, router, func(*sql.Tx) error { return nil })
	fmt.Println("globex:", errors.Is(err, store.ErrIsolationUnsupported))
	// Output:
	// acme has 2 notes
	// globex: true
}

// Whatever SQL runs in the transaction, injected SQL included, stays in
// the tenant's file: the guard refuses what would leave it.
func ExampleTx_guard() {
	dir, _ := os.MkdirTemp("", "bulkhead-example")
	defer os.RemoveAll(dir)
	router := openExample(dir, nil)
	defer router.Close()

	ctx := tenant.WithID(context.Background(), tenant.MustParse("acme"))
	for _, stmt := range []string{
		`ATTACH DATABASE '` + dir + `/pooled.db' AS other`,
		`DELETE FROM records`, // Bulkhead's table: records change through the record API only
		`PRAGMA foreign_keys = OFF`,
	} {
		err := sqlite.Tx(ctx, router, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, stmt)
			return err
		})
		fmt.Println(errors.Is(err, sqlite.ErrRefused))
	}
	// Output:
	// true
	// true
	// true
}

// With gives the *sql.Tx of a store transaction opened for SQL, so a
// record and the team's own rows commit, or roll back, together.
func ExampleWith() {
	dir, _ := os.MkdirTemp("", "bulkhead-example")
	defer os.RemoveAll(dir)
	ms := []migrate.Migration{
		{Version: 1, Name: "create_audit", SQL: `CREATE TABLE audit (record TEXT NOT NULL) STRICT`},
	}
	router := openExample(dir, ms)
	defer router.Close()

	ctx := tenant.WithID(context.Background(), tenant.MustParse("acme"))
	errAbort := errors.New("changed my mind")
	err := router.Run(ctx, store.TxOptions{SQL: true}, func(stx *store.Tx) error {
		if _, _, err := stx.Put(ctx, "invoices", "inv-1", []byte(`{"total":120}`), store.IfMatch{}); err != nil {
			return err
		}
		tx, err := sqlite.With(stx)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit (record) VALUES ('inv-1')`); err != nil {
			return err
		}
		return errAbort // rolls back the record and the audit row
	})
	fmt.Println(err)

	err = sqlite.ReadTx(ctx, router, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM audit`).Scan(&n); err != nil {
			return err
		}
		fmt.Println("audit rows:", n)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	err = router.ReadTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Get(ctx, "invoices", "inv-1")
		return err
	})
	fmt.Println("record:", err)
	// Output:
	// changed my mind
	// audit rows: 0
	// record: record not found
}
