package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/migrate"
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

// App is the invoices service: a Bulkhead catalog (tenants and API keys)
// and a fleet over one PostgreSQL shard, whose router opens tenant-scoped
// transactions.
type App struct {
	cat    *catalog.Catalog
	fleet  *fleet.Fleet
	router *store.Router
}

// Open connects to PostgreSQL and brings every placement up to the latest
// migration: the pooled schema when the backend opens, then every schema
// and database tenant that is behind (a fleet run).
func Open(ctx context.Context, cfg Config) (*App, error) {
	ms, err := migrate.LoadDir(migrationsFS, "migrations")
	if err != nil {
		return nil, err
	}
	b, err := postgres.Open(ctx, postgres.Shard{Name: shard, URL: cfg.URL, AdminURL: cfg.AdminURL},
		postgres.Options{Migrations: ms, MaxConns: cfg.MaxConns, DatabasePrefix: cfg.DatabasePrefix})
	if err != nil {
		return nil, err
	}
	if err := b.CheckServingRole(ctx); err != nil {
		b.Close()
		return nil, err
	}
	cat, err := catalog.OpenPostgres(ctx, b.OperatorPool(), catalog.Options{})
	if err != nil {
		b.Close()
		return nil, err
	}
	// The service lists nothing through the router: no cursor key.
	f, err := fleet.New(fleet.Config{Catalog: cat, Backends: map[string]store.Backend{shard: b}, Migrations: ms})
	if err != nil {
		cat.Close()
		b.Close()
		return nil, err
	}
	a := &App{cat: cat, fleet: f, router: f.Router()}
	if err := a.Migrate(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Migrate applies the migrations to every placement that is behind.
func (a *App) Migrate(ctx context.Context) error {
	_, err := a.fleet.Migrate(ctx, fleet.MigrateOptions{})
	return err
}

// Close closes the catalog and the backend.
func (a *App) Close() error {
	return errors.Join(a.cat.Close(), a.fleet.Close())
}

// CreateTenant creates tenant id in mode — a schema or database of its
// own gets the migrations before the tenant is active — and returns a
// writer API key's token for it.
func (a *App) CreateTenant(ctx context.Context, id tenant.ID, mode store.Mode) (string, error) {
	if _, err := a.fleet.Create(ctx, fleet.Spec{ID: id.String(), Isolation: new(string(mode))}); err != nil {
		return "", err
	}
	_, token, err := a.cat.CreateKey(ctx, id, catalog.RoleWriter, "invoices")
	return token, err
}

// Invoice is one invoice as the API shows it.
type Invoice struct {
	ID          string    `json:"id"`
	Customer    string    `json:"customer"`
	AmountCents int64     `json:"amount_cents"`
	CreatedAt   time.Time `json:"created_at"`
}

// Handler serves POST /invoices and GET /invoices. The tenant comes only
// from the API key in "Authorization: Bearer <token>"; nothing in the
// request can name another tenant.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /invoices", a.create)
	mux.HandleFunc("GET /invoices", a.list)
	return a.authenticate(mux)
}

// authenticate puts the tenant of the request's API key in its context.
func (a *App) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "missing bearer token", http.StatusUnauthorized)
			return
		}
		p, err := a.cat.Authenticate(r.Context(), token)
		switch {
		case errors.Is(err, catalog.ErrSuspended):
			http.Error(w, "tenant suspended", http.StatusForbidden)
			return
		case err != nil:
			http.Error(w, "invalid credential", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(tenant.WithID(r.Context(), p.Tenant)))
	})
}

func (a *App) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Customer    string `json:"customer"`
		AmountCents int64  `json:"amount_cents"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields() // a "tenant_id" in the body is refused, not ignored
	if err := dec.Decode(&in); err != nil || in.Customer == "" || in.AmountCents < 0 {
		http.Error(w, `body must be {"customer": "...", "amount_cents": N >= 0}`, http.StatusBadRequest)
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
		http.Error(w, "could not create the invoice", http.StatusInternalServerError)
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
		http.Error(w, "could not list invoices", http.StatusInternalServerError)
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
