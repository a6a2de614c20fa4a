package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
)

// sqliteCatalogFile is the catalog's file in a data directory, as
// bulkhead serve names it.
const sqliteCatalogFile = "control.db"

// openSQLiteFleet opens the embedded default in data directory dir for
// migrate: it takes the directory's lock (refusing while a server or
// another migrate holds it) by opening the records backend, then opens the
// catalog. Its units are the database-mode tenants: SQLite pooled tenants
// have no team tables (no team SQL runs in the pooled file), and the
// backend leaves them out.
func openSQLiteFleet(dir string, ms []migrate.Migration, concurrency int) (*fleet.Fleet, func(), error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("data dir %q: %w", dir, err)
	}
	catPath := filepath.Join(abs, sqliteCatalogFile)
	if _, err := os.Stat(catPath); err != nil {
		return nil, nil, fmt.Errorf("no catalog at %s (give the data directory bulkhead serve uses, --data-dir or BULKHEAD_DATA_DIR): %w", catPath, err)
	}
	b, err := sqlite.Open(abs, sqlite.Options{MaxOpenDatabases: concurrency + 1})
	if errors.Is(err, sqlite.ErrLocked) {
		return nil, nil, fmt.Errorf("data directory %s is in use: a bulkhead serve (or another migrate) owns it; "+
			"stop the server, run migrate, then start the server again (%w)", abs, err)
	}
	if err != nil {
		return nil, nil, err
	}
	cat, err := catalog.Open(catPath, catalog.Options{})
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	f, err := fleet.New(fleet.Config{Catalog: cat, Backends: map[string]store.Backend{server.LocalShard: b}, Migrations: ms})
	if err != nil {
		cat.Close()
		b.Close()
		return nil, nil, err
	}
	return f, func() { f.Close(); cat.Close() }, nil
}
