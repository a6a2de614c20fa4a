package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/identity"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ingress/catalogauth"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// migrationsFS holds the service's own SQL migrations, applied to every
// tenant's own SQLite file.
//
//go:embed migrations/*.sql
var migrationsFS embed.FS

// placement: every tenant has a SQLite file of its own (database mode).
var placement = store.Placement{Mode: store.Database, Shard: "local"}

// Directory is the service's tenants and the JWT issuers each one trusts,
// from a small static file. It is what Bulkhead asks about tenants: their
// issuers (identity.IssuerSource), their placement (store.Placements) and
// whether they are active and since when (catalogauth.Incarnations). A production service
// keeps tenants in Bulkhead's catalog instead, which implements all three
// and can be changed while the service runs.
type Directory map[tenant.ID][]identity.Issuer

// LoadDirectory reads a Directory from a JSON file:
// {"acme": [{"issuer": "https://login.example", "audience": "tasks"}]}.
func LoadDirectory(path string) (Directory, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Directory
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("tenants file %s: %w", path, err)
	}
	return d, nil
}

// Issuers implements identity.IssuerSource.
func (d Directory) Issuers(_ context.Context, id tenant.ID) ([]identity.Issuer, error) {
	var out []identity.Issuer
	for _, is := range d[id] {
		out = append(out, is.WithDefaults())
	}
	return out, nil
}

// Placement implements store.Placements.
func (d Directory) Placement(_ context.Context, id tenant.ID) (store.Placement, error) {
	if _, ok := d[id]; !ok {
		return store.Placement{}, fmt.Errorf("%w %q", store.ErrUnknownTenant, id)
	}
	return placement, nil
}

// Incarnation implements catalogauth.Incarnations: every tenant listed is
// active, and a static file keeps no history, so its one incarnation began
// at the zero time (a tenant removed and listed again is the same tenant
// to it; the catalog tells them apart).
func (d Directory) Incarnation(_ context.Context, id tenant.ID) (catalog.State, time.Time, error) {
	if _, ok := d[id]; !ok {
		return "", time.Time{}, catalog.ErrNotFound
	}
	return catalog.Active, time.Time{}, nil
}

// App is the tasks service: tenant users' JWTs checked by a Bulkhead
// ingress gate, and tasks in each tenant's own SQLite file.
type App struct {
	router   *store.Router
	verifier *identity.Verifier
	gate     *ingress.Gate
}

// Open opens (creating if needed) the data directory dataDir, which the
// process owns until Close, and gives every tenant of dir its file: created
// with the migrations applied, or brought up to the latest one.
func Open(ctx context.Context, dataDir string, dir Directory) (*App, error) {
	for id, list := range dir {
		for _, is := range list {
			if err := is.Validate(); err != nil {
				return nil, fmt.Errorf("tenant %s: %w", id, err)
			}
		}
	}
	ms, err := migrate.LoadDir(migrationsFS, "migrations")
	if err != nil {
		return nil, err
	}
	engine, err := policy.New(policy.Options{})
	if err != nil {
		return nil, err
	}
	a := &App{verifier: identity.NewVerifier(identity.VerifierOptions{Issuers: dir})}
	a.gate, err = ingress.New(ingress.Config{Authenticator: catalogauth.JWT(a.verifier, dir), Policy: engine})
	if err != nil {
		return nil, errors.Join(err, a.verifier.Close())
	}
	// The policy sees every route as acting on the collection "tasks".
	a.gate.SetHTTPOptions(ingress.HTTPOptions{Collection: func(*http.Request) string { return "tasks" }})
	b, err := sqlite.Open(dataDir, sqlite.Options{Migrations: ms})
	if err != nil {
		return nil, errors.Join(err, a.verifier.Close())
	}
	a.router, err = store.NewRouter(store.Config{Placements: dir, Backends: map[string]store.Backend{placement.Shard: b}})
	if err != nil {
		return nil, errors.Join(err, b.Close(), a.verifier.Close())
	}
	for id := range dir {
		// A new file gets the migrations in the transaction that creates
		// it; an existing one gets those it lacks.
		if err := a.router.Provision(ctx, id, placement); err != nil {
			return nil, errors.Join(err, a.Close())
		}
	}
	return a, nil
}

// Close stops the JWKS refreshes and releases the data directory.
func (a *App) Close() error {
	return errors.Join(a.verifier.Close(), a.router.Close())
}

// Handler serves the tasks API. Every route is behind the gate: the
// tenant is the one the verified JWT names, the policy decides by the
// token's role (readers read, writers also create, change and delete).
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern, action string, h func(http.ResponseWriter, *http.Request) error) {
		mux.Handle(pattern, a.gate.Data(action, a.answer(h)))
	}
	route("POST /tasks", "record.write", a.create)
	route("GET /tasks", "record.read", a.list)
	route("GET /tasks/{id}", "record.read", a.get)
	route("PATCH /tasks/{id}", "record.write", a.update)
	route("DELETE /tasks/{id}", "record.delete", a.delete)
	return mux
}

// Task is one task as the API shows it.
type Task struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Done      bool      `json:"done"`
	CreatedAt time.Time `json:"created_at"`
}

const columns = `id, title, done, created_at`

func scan(row interface{ Scan(...any) error }) (Task, error) {
	var t Task
	var created int64
	err := row.Scan(&t.ID, &t.Title, &t.Done, &created)
	t.CreatedAt = time.UnixMicro(created).UTC()
	return t, err
}

func (a *App) create(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Title string `json:"title"`
	}
	if err := decode(w, r, &in); err != nil || in.Title == "" {
		return problem.New(http.StatusBadRequest, "invalid_body", `the body must be {"title": "..."}`)
	}
	t := Task{ID: rand.Text(), Title: in.Title, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	// The *sql.Tx is on the file of the tenant in the context (the gate put
	// it there): the file is the boundary.
	err := sqlite.Tx(r.Context(), a.router, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(r.Context(), `INSERT INTO tasks (id, title, created_at) VALUES (?, ?, ?)`,
			t.ID, t.Title, t.CreatedAt.UnixMicro())
		return err
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusCreated, t)
}

func (a *App) list(w http.ResponseWriter, r *http.Request) error {
	items := []Task{}
	err := sqlite.ReadTx(r.Context(), a.router, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(r.Context(), `SELECT `+columns+` FROM tasks ORDER BY done, created_at, id LIMIT 1000`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scan(rows)
			if err != nil {
				return err
			}
			items = append(items, t)
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, map[string]any{"items": items})
}

func (a *App) get(w http.ResponseWriter, r *http.Request) error {
	var t Task
	err := sqlite.ReadTx(r.Context(), a.router, func(tx *sql.Tx) (err error) {
		t, err = scan(tx.QueryRowContext(r.Context(), `SELECT `+columns+` FROM tasks WHERE id = ?`, r.PathValue("id")))
		return err
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, t)
}

func (a *App) update(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Title *string `json:"title"`
		Done  *bool   `json:"done"`
	}
	if err := decode(w, r, &in); err != nil || in.Title != nil && *in.Title == "" {
		return problem.New(http.StatusBadRequest, "invalid_body", `the body must be {"title": "...", "done": true|false}, either or both`)
	}
	var t Task
	err := sqlite.Tx(r.Context(), a.router, func(tx *sql.Tx) (err error) {
		t, err = scan(tx.QueryRowContext(r.Context(),
			`UPDATE tasks SET title = coalesce(?2, title), done = coalesce(?3, done) WHERE id = ?1 RETURNING `+columns,
			r.PathValue("id"), in.Title, in.Done))
		return err
	})
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, t)
}

func (a *App) delete(w http.ResponseWriter, r *http.Request) error {
	err := sqlite.Tx(r.Context(), a.router, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(r.Context(), `DELETE FROM tasks WHERE id = ?`, r.PathValue("id"))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, sql.ErrNoRows)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// answer adapts a handler that returns an error: a problem as it is, a
// missing row as 404 (another tenant's task is as missing as one never
// made), anything else as the gate answers a failure (logged; 500 without
// details).
func (a *App) answer(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		var p *problem.Error
		switch {
		case err == nil:
		case errors.As(err, &p):
			problem.Write(w, p)
		case errors.Is(err, sql.ErrNoRows):
			problem.Write(w, problem.New(http.StatusNotFound, "not_found", "no task with this id"))
		default:
			a.gate.WriteError(w, r, err)
		}
	})
}

// decode reads a JSON body into v, refusing unknown fields: a "tenant" in
// the body is an error, not something quietly ignored.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// reply writes v as JSON. Once the status is sent there is no other
// answer to give, so it returns nil.
func reply(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // only a gone client fails here
	return nil
}
