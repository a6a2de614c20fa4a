package catalog_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
)

// fixture is one catalog's storage; open returns another Catalog on it
// (closed when the test ends), as a second server instance would.
type fixture struct {
	open func(t *testing.T, opts ...catalog.Options) *catalog.Catalog
	raw  func(t *testing.T) []byte // everything stored about keys, for leak checks
	url  string                    // PostgreSQL only: the database's superuser URL
	// exec runs one statement on the catalog's tables as their owner,
	// behind the Catalog's back (an older version's catalog, say).
	exec func(t *testing.T, query string)
}

// engine makes fresh catalog storage.
type engine struct {
	name string
	new  func(t *testing.T) *fixture
}

var engines = []engine{
	{"sqlite", newSQLite},
	{"postgres", newPostgres},
}

// forEachEngine runs fn on each engine, each with fresh storage.
func forEachEngine(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { fn(t, e.new(t)) })
	}
}

func opt(opts []catalog.Options) catalog.Options {
	if len(opts) > 0 {
		return opts[0]
	}
	return catalog.Options{}
}

func newSQLite(t *testing.T) *fixture {
	path := filepath.Join(t.TempDir(), "control.db")
	return &fixture{
		open: func(t *testing.T, opts ...catalog.Options) *catalog.Catalog {
			t.Helper()
			c, err := catalog.Open(path, opt(opts))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		},
		exec: func(t *testing.T, query string) {
			t.Helper()
			db, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(query); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		},
		raw: func(t *testing.T) []byte {
			var all []byte
			for _, suffix := range []string{"", "-wal"} {
				b, _ := os.ReadFile(path + suffix)
				all = append(all, b...)
			}
			return all
		},
	}
}

// newPostgres creates a database and its owner and serving roles with
// pgtest (dropped when the test ends) and opens catalogs as the owner, as
// the server does; each open gets its own small pool, like a separate
// instance.
func newPostgres(t *testing.T) *fixture {
	t.Helper()
	env := pgtest.New(t)
	dbURL := env.AdminURL
	f := &fixture{url: env.SuperURL}
	f.open = func(t *testing.T, opts ...catalog.Options) *catalog.Catalog {
		t.Helper()
		pool := newPool(t, dbURL)
		c, err := catalog.OpenPostgres(context.Background(), pool, opt(opts))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	f.exec = func(t *testing.T, query string) {
		t.Helper()
		conn, err := pgx.Connect(context.Background(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), `SET search_path TO bulkhead_catalog; `+query); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	f.raw = func(t *testing.T) []byte {
		pool := newPool(t, dbURL)
		rows, err := pool.Query(context.Background(), `SELECT tenant_id, id, role, name, secret_hash FROM bulkhead_catalog.api_keys`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var all bytes.Buffer
		for rows.Next() {
			var a, b, c, d string
			var h []byte
			if err := rows.Scan(&a, &b, &c, &d, &h); err != nil {
				t.Fatal(err)
			}
			all.WriteString(a + b + c + d)
			all.Write(h)
			all.WriteString(hex.EncodeToString(h))
		}
		return all.Bytes()
	}
	return f
}

func newPool(t *testing.T, dbURL string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 3
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // runs after the catalog's Close (cleanups are LIFO)
	return pool
}
