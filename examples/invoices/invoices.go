package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ingress/catalogauth"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// migrationsFS holds the service's own SQL migrations. Bulkhead applies
// them to every placement: the shard's pooled schema, every schema tenant,
// every database tenant.
//
//go:embed migrations/*.sql
var migrationsFS embed.FS

// shard is the name of the service's one PostgreSQL shard.
const shard = "main"

// Config says where the service's PostgreSQL is.
type Config struct {
	URL      string // serving role: not owner, not superuser, no BYPASSRLS
	AdminURL string // owner role: runs the migrations and holds the catalog
	// MaxConns bounds each connection pool (0: Bulkhead's default).
	MaxConns int32
	// DatabasePrefix is put before database-mode tenants' database names
	// (tests use it to share one server).
	DatabasePrefix string
}

// App is the invoices service: a Bulkhead fleet over one PostgreSQL
// shard, with its catalog (tenants and API keys) and its router, which
// opens tenant-scoped transactions, and the ingress gate in front of the
// handlers.
type App struct {
	fleet  *fleet.Fleet
	router *store.Router
	gate   *ingress.Gate
}

// Open connects to PostgreSQL (refusing a serving role that row-level
// security would not hold) and brings every placement up to the latest
// migration: the pooled schema when the backend opens, then every schema
// and database tenant that is behind (a fleet run).
func Open(ctx context.Context, cfg Config) (*App, error) {
	ms, err := migrate.LoadDir(migrationsFS, "migrations")
	if err != nil {
		return nil, err
	}
	// The service lists nothing through the router: no cursor key.
	f, err := fleet.OpenPostgres(ctx, postgres.Shard{Name: shard, URL: cfg.URL, AdminURL: cfg.AdminURL},
		fleet.OpenOptions{Migrations: ms, MaxConns: cfg.MaxConns, DatabasePrefix: cfg.DatabasePrefix})
	if err != nil {
		return nil, err
	}
	a := &App{fleet: f, router: f.Router()}
	if err := a.Migrate(ctx); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	// The catalog's API keys; no Policy: Bulkhead's default (readers read,
	// writers also write).
	if a.gate, err = ingress.New(ingress.Config{Authenticator: catalogauth.Keys(f.Catalog())}); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	return a, nil
}

// Migrate applies the migrations to every placement that is behind.
func (a *App) Migrate(ctx context.Context) error {
	_, err := a.fleet.Migrate(ctx, fleet.MigrateOptions{})
	return err
}

// Close closes the catalog and the backend.
func (a *App) Close() error { return a.fleet.Close() }

// CreateTenant creates tenant id in mode — a schema or database of its
// own gets the migrations before the tenant is active — and returns a
// writer API key's token for it.
func (a *App) CreateTenant(ctx context.Context, id tenant.ID, mode store.Mode) (string, error) {
	if _, err := a.fleet.Create(ctx, fleet.Spec{ID: id.String(), Isolation: new(string(mode))}); err != nil {
		return "", err
	}
	_, token, err := a.fleet.Catalog().CreateKey(ctx, id, catalog.RoleWriter, "invoices")
	return token, err
}

// Invoice is one invoice as the API shows it.
type Invoice struct {
	ID          string    `json:"id"`
	Customer    string    `json:"customer"`
	AmountCents int64     `json:"amount_cents"`
	CreatedAt   time.Time `json:"created_at"`
}

// Handler serves POST /invoices and GET /invoices. The ingress gate
// authenticates the Bulkhead API key in "Authorization: Bearer <token>" (a
// suspended tenant's keys are refused), asks the default policy whether
// the key's role may do the route's action, and puts the key's tenant in
// the context: nothing in the request can name another tenant.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /invoices", a.gate.Data("record.write", http.HandlerFunc(a.create)))
	mux.Handle("GET /invoices", a.gate.Data("record.read", http.HandlerFunc(a.list)))
	return mux
}

func (a *App) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Customer    string `json:"customer"`
		AmountCents int64  `json:"amount_cents"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields() // a "tenant_id" in the body is refused, not ignored
	if err := dec.Decode(&in); err != nil || in.Customer == "" || in.AmountCents < 0 {
		problem.Write(w, problem.New(http.StatusBadRequest, "invalid_body", `the body must be {"customer": "...", "amount_cents": N >= 0}`))
		return
	}
	var inv Invoice
	err := postgres.Tx(r.Context(), a.router, func(tx pgx.Tx) error {
		// tenant_id defaults to the transaction's tenant; row-level security
		// (pooled) and the schema or database (other modes) confine the row.
		return tx.QueryRow(r.Context(),
			`INSERT INTO invoices (customer, amount_cents) VALUES ($1, $2)
			 RETURNING id::text, customer, amount_cents, created_at`,
			in.Customer, in.AmountCents).Scan(&inv.ID, &inv.Customer, &inv.AmountCents, &inv.CreatedAt)
	})
	if err != nil {
		a.gate.WriteError(w, r, err) // logged; 500 (problem+json)
		return
	}
	writeJSON(w, http.StatusCreated, inv)
}

func (a *App) list(w http.ResponseWriter, r *http.Request) {
	items := []Invoice{}
	err := postgres.ReadTx(r.Context(), a.router, func(tx pgx.Tx) error {
		rows, err := tx.Query(r.Context(),
			`SELECT id::text, customer, amount_cents, created_at FROM invoices ORDER BY created_at, id LIMIT 1000`)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Invoice, error) {
			var inv Invoice
			err := row.Scan(&inv.ID, &inv.Customer, &inv.AmountCents, &inv.CreatedAt)
			return inv, err
		})
		return err
	})
	if err != nil {
		a.gate.WriteError(w, r, err) // logged; 500 (problem+json)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Printf("write response: %v", err)
	}
}
