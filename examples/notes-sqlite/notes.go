package main

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ingress/catalogauth"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// migrationsFS holds the service's own SQL migrations. Bulkhead applies
// them to every tenant's own SQLite file.
//
//go:embed migrations/*.sql
var migrationsFS embed.FS

// App is the notes service: a Bulkhead fleet over a SQLite backend in one
// data directory, with its catalog (tenants and API keys) and its router,
// which opens tenant-scoped transactions, and the ingress gate in front
// of the handlers.
type App struct {
	fleet  *fleet.Fleet
	router *store.Router
	gate   *ingress.Gate
}

// Open opens (creating if needed) the data directory dir and brings every
// tenant up to the latest migration. The process owns the directory until
// Close (fleet.OpenSQLite locks it).
func Open(ctx context.Context, dir string) (*App, error) {
	ms, err := migrate.LoadDir(migrationsFS, "migrations")
	if err != nil {
		return nil, err
	}
	// The backend in dir and the catalog in dir/control.db, with one shard
	// "local": the layout of bulkhead serve, so that 'bulkhead migrate
	// --data-dir' works on the same directory. The service lists nothing
	// through the router: no cursor key.
	f, err := fleet.OpenSQLite(ctx, dir, fleet.OpenOptions{Migrations: ms})
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

// Migrate applies the migrations to every tenant that is behind. SQLite
// pooled tenants have no own tables (no own SQL runs in the shared file),
// so only database-mode tenants are units.
func (a *App) Migrate(ctx context.Context) error {
	_, err := a.fleet.Migrate(ctx, fleet.MigrateOptions{})
	return err
}

// Close closes the catalog and the backend, releasing the data directory.
func (a *App) Close() error { return a.fleet.Close() }

// CreateTenant creates tenant id in database mode — a SQLite file of its
// own, with the migrations applied before the tenant is active — and
// returns a writer API key's token for it.
func (a *App) CreateTenant(ctx context.Context, id tenant.ID) (string, error) {
	if _, err := a.fleet.Create(ctx, fleet.Spec{ID: id.String(), Isolation: new(string(store.Database))}); err != nil {
		return "", err
	}
	_, token, err := a.fleet.Catalog().CreateKey(ctx, id, catalog.RoleWriter, "notes")
	return token, err
}

// Note is one note as the API shows it.
type Note struct {
	ID        int64     `json:"id"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
}

// Handler serves POST /notes and GET /notes[?title=...]. The ingress gate
// authenticates the Bulkhead API key in "Authorization: Bearer <token>" (a
// suspended tenant's keys are refused), asks the default policy whether
// the key's role may do the route's action, and puts the key's tenant in
// the context: nothing in the request can name another tenant.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /notes", a.gate.Data("record.write", http.HandlerFunc(a.create)))
	mux.Handle("GET /notes", a.gate.Data("record.read", http.HandlerFunc(a.list)))
	return mux
}

func (a *App) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Title string `json:"title"`
		Body  string `json:"body"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields() // a "tenant" in the body is refused, not ignored
	if err := dec.Decode(&in); err != nil || in.Title == "" {
		problem.Write(w, problem.New(http.StatusBadRequest, "invalid_body", `the body must be {"title": "...", "body": "..."}`))
		return
	}
	n := Note{Title: in.Title, Body: in.Body, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	// The *sql.Tx is on the tenant's own file: the file is the boundary.
	err := sqlite.Tx(r.Context(), a.router, func(tx *sql.Tx) error {
		return tx.QueryRowContext(r.Context(),
			`INSERT INTO notes (title, body, created_at) VALUES (?, ?, ?) RETURNING id`,
			n.Title, n.Body, n.CreatedAt.UnixMicro()).Scan(&n.ID)
	})
	if err != nil {
		a.gate.WriteError(w, r, err) // logged; 500 (problem+json)
		return
	}
	writeJSON(w, http.StatusCreated, n)
}

func (a *App) list(w http.ResponseWriter, r *http.Request) {
	items := []Note{}
	title := r.URL.Query().Get("title")
	err := sqlite.ReadTx(r.Context(), a.router, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(r.Context(),
			`SELECT id, title, body, created_at FROM notes WHERE ?1 = '' OR title = ?1 ORDER BY id LIMIT 1000`, title)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var n Note
			var created int64
			if err := rows.Scan(&n.ID, &n.Title, &n.Body, &created); err != nil {
				return err
			}
			n.CreatedAt = time.UnixMicro(created).UTC()
			items = append(items, n)
		}
		return rows.Err()
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

// errUsage is a command line mistake.
var errUsage = fmt.Errorf("usage: notes-sqlite [-data-dir DIR] [-addr HOST:PORT] serve | tenant ID")
