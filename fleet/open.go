package fleet

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
)

// SQLiteShard is the name OpenSQLite gives its one shard, and
// SQLiteCatalogFile the catalog's file in its data directory: the names
// `bulkhead serve --data-dir` uses, so that `bulkhead migrate --data-dir`
// works on a service's directory.
const (
	SQLiteShard       = "local"
	SQLiteCatalogFile = "control.db"
)

// OpenOptions configures OpenPostgres and OpenSQLite.
type OpenOptions struct {
	// Migrations are the team's own SQL migrations (migrate.LoadDir). The
	// backend gets them too: a new unit is created with them, and a
	// PostgreSQL shard's pooled tables are migrated when it opens.
	Migrations []migrate.Migration
	// Placement chooses new tenants' placements; nil means FewestTenants.
	Placement PlacementRule
	// Router holds the router's other settings: the cursor key (needed
	// only to list records), the clock, quotas. Leave its Placements and
	// Backends unset.
	Router store.Config
	// Catalog holds the catalog's settings (logger, clock).
	Catalog catalog.Options
	// MaxOpenDatabases bounds the database-mode tenants whose database or
	// file the backend keeps open; 0 means the backend's default.
	MaxOpenDatabases int
	// MaxConns bounds each PostgreSQL connection pool; 0 means the
	// backend's default. PostgreSQL only.
	MaxConns int32
	// DatabasePrefix is put before database-mode tenants' database names,
	// so that several services or test runs can share a server.
	// PostgreSQL only.
	DatabasePrefix string
}

// OpenPostgres opens a fleet on one PostgreSQL shard: it connects to
// shard (which migrates its pooled tables with opts.Migrations), refuses a
// serving role that row-level security would not hold (an error wrapping
// postgres.ErrUnsafeServingRole that says how to fix it), and opens the
// catalog on the shard's owner-role pool. It does not migrate tenants'
// own schemas and databases: call Migrate for that. The Fleet's Close
// closes the catalog and the backend; on any error OpenPostgres has
// closed whatever it opened.
func OpenPostgres(ctx context.Context, shard postgres.Shard, opts OpenOptions) (*Fleet, error) {
	b, err := postgres.Open(ctx, shard, postgres.Options{
		Migrations:       opts.Migrations,
		MaxOpenDatabases: opts.MaxOpenDatabases,
		MaxConns:         opts.MaxConns,
		DatabasePrefix:   opts.DatabasePrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: open shard %s: %w", shard.Name, err)
	}
	if err := b.CheckServingRole(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("fleet: refusing to serve: %w", err), b.Close())
	}
	cat, err := catalog.OpenPostgres(ctx, b.OperatorPool(), opts.Catalog)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("fleet: %w", err), b.Close())
	}
	return open(cat, shard.Name, b, opts)
}

// OpenSQLite opens a fleet on the embedded default: a SQLite backend in
// the data directory dir (created if needed, and locked until Close) and
// the catalog in its file SQLiteCatalogFile, with one shard named
// SQLiteShard. It does not migrate existing tenants: call Migrate for
// that. The Fleet's Close closes the catalog and the backend, releasing
// dir; on any error OpenSQLite has closed whatever it opened.
func OpenSQLite(ctx context.Context, dir string, opts OpenOptions) (*Fleet, error) {
	if opts.MaxConns != 0 || opts.DatabasePrefix != "" {
		return nil, errors.New("fleet: OpenOptions.MaxConns and DatabasePrefix are PostgreSQL settings; leave them unset for SQLite")
	}
	b, err := sqlite.Open(dir, sqlite.Options{Migrations: opts.Migrations, MaxOpenDatabases: opts.MaxOpenDatabases})
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	cat, err := catalog.Open(filepath.Join(b.Dir(), SQLiteCatalogFile), opts.Catalog)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("fleet: %w", err), b.Close())
	}
	return open(cat, SQLiteShard, b, opts)
}

// open makes the Fleet over the catalog and backend OpenPostgres or
// OpenSQLite opened; it owns both from then on.
func open(cat *catalog.Catalog, shard string, b store.Backend, opts OpenOptions) (*Fleet, error) {
	f, err := New(Config{
		Catalog:    cat,
		Backends:   map[string]store.Backend{shard: b},
		Migrations: opts.Migrations,
		Placement:  opts.Placement,
		Router:     opts.Router,
	})
	if err != nil {
		return nil, errors.Join(err, cat.Close(), b.Close())
	}
	f.catalog, f.ownsCatalog = cat, true
	return f, nil
}
