package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bulkhead-dev/bulkhead/catalog"
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
// have no team tables (no team SQL runs in the pooled file), so the pooled
// units the catalog lists are left out.
func openSQLiteFleet(ctx context.Context, dir string, concurrency int) (*fleet, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("data dir %q: %w", dir, err)
	}
	catPath := filepath.Join(abs, sqliteCatalogFile)
	if _, err := os.Stat(catPath); err != nil {
		return nil, fmt.Errorf("no catalog at %s (give the data directory bulkhead serve uses, --data-dir or BULKHEAD_DATA_DIR): %w", catPath, err)
	}
	b, err := sqlite.Open(abs, sqlite.Options{MaxOpenDatabases: concurrency + 1})
	if errors.Is(err, sqlite.ErrLocked) {
		return nil, fmt.Errorf("data directory %s is in use: a bulkhead serve (or another migrate) owns it; "+
			"stop the server, run migrate, then start the server again (%w)", abs, err)
	}
	if err != nil {
		return nil, err
	}
	cat, err := catalog.Open(catPath, catalog.Options{})
	if err != nil {
		b.Close()
		return nil, err
	}
	fl := &fleet{cat: cat, closers: []func(){func() { b.Close() }, func() { cat.Close() }}}
	units, err := cat.MigrationUnits(ctx)
	if err != nil {
		fl.close()
		return nil, err
	}
	for _, u := range units {
		if u.Mode != store.Pooled {
			fl.units = append(fl.units, u)
		}
	}
	fl.appliers = func(context.Context) (map[string]migrate.Applier, error) {
		return map[string]migrate.Applier{server.LocalShard: b}, nil
	}
	return fl, nil
}
