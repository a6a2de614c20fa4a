package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// These examples need a PostgreSQL server, so they are compiled but not
// run; store/postgres's tests run the same calls against a real server
// (BULKHEAD_TEST_POSTGRES).

// A team's own table in every isolation mode: migrations create it in the
// shard's pooled schema and in each schema or database tenant, and Tx runs
// the team's SQL sealed to the tenant in the context.
func ExampleTx() {
	ctx := context.Background()
	ms := []migrate.Migration{{Version: 1, Name: "create_invoices", SQL: `
		CREATE TABLE invoices (
			tenant_id text   NOT NULL DEFAULT current_setting('bulkhead.tenant'),
			id        uuid   NOT NULL DEFAULT gen_random_uuid(),
			customer  text   NOT NULL,
			PRIMARY KEY (tenant_id, id)
		)`}} // usually migrate.LoadDir(migrationsFS, "migrations")
	be, err := postgres.Open(ctx, postgres.Shard{
		Name:     "main",
		URL:      "postgres://app@db.internal/bulkhead",   // serving role: no owner, no BYPASSRLS
		AdminURL: "postgres://owner@db.internal/bulkhead", // owner role: runs the DDL
	}, postgres.Options{Migrations: ms})
	if err != nil {
		log.Fatal(err)
	}
	if err := be.CheckServingRole(ctx); err != nil {
		log.Fatal(err) // pooled and schema tenants are refused while the role is unsafe
	}
	router, err := store.NewRouter(store.Config{
		Placements: catalog, // where each tenant lives: the catalog in production
		Backends:   map[string]store.Backend{"main": be},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer router.Close()

	acme := tenant.WithID(ctx, tenant.MustParse("acme"))
	err = postgres.Tx(acme, router, func(tx pgx.Tx) error {
		// tenant_id defaults to the transaction's tenant; a forged one is
		// refused by row-level security.
		_, err := tx.Exec(acme, `INSERT INTO invoices (customer) VALUES ($1)`, "Wile E.")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
}

// ReadTx is the read-only variant: each statement runs sealed in one round
// trip, and sees only the tenant's rows whatever it asks for.
func ExampleReadTx() {
	var router *store.Router // as in the Tx example
	ctx := tenant.WithID(context.Background(), tenant.MustParse("acme"))
	var n int
	err := postgres.ReadTx(ctx, router, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM invoices`).Scan(&n) // acme's invoices only
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n)
}

// With puts a record and the team's own rows in one transaction.
func ExampleWith() {
	var router *store.Router // as in the Tx example
	ctx := tenant.WithID(context.Background(), tenant.MustParse("acme"))
	err := router.Run(ctx, store.TxOptions{SQL: true}, func(stx *store.Tx) error {
		rec, err := stx.Create(ctx, "payments", []byte(`{"cents":1200}`))
		if err != nil {
			return err
		}
		tx, err := postgres.With(stx)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO invoices (customer) VALUES ($1)`, "payment "+rec.ID)
		return err // nil commits both; an error rolls both back
	})
	if errors.Is(err, postgres.ErrStatementRefused) {
		log.Fatal("transaction control belongs to the store")
	}
	if err != nil {
		log.Fatal(err)
	}
}

// catalog stands in for the production placement source.
var catalog store.Placements
