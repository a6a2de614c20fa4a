package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
)

var _ migrate.VersionReader = (*Backend)(nil)

// versionBatch is how many schemas one statement reads the versions of.
const versionBatch = 200

// UnitVersions implements migrate.VersionReader: the version of each of
// units, read as the admin role from the unit's own schema_migrations
// table, which Apply and Provision write in the migration's transaction (0
// when the unit records none). The shard's pooled unit and its schema
// tenants are read together, a few statements for the whole shard; each
// database tenant takes one connection to its database, a few at a time. It changes
// nothing: a schema or database that does not exist is an error.
func (b *Backend) UnitVersions(ctx context.Context, units []migrate.Unit) (map[migrate.Unit]int, error) {
	out := make(map[migrate.Unit]int, len(units))
	bySchema := map[string]migrate.Unit{}
	var databases []migrate.Unit
	for _, u := range units {
		if u.Shard != b.shard.Name {
			return nil, fmt.Errorf("postgres: unit %s is not on shard %s", u, b.shard.Name)
		}
		if err := b.Supports(u.Mode); err != nil {
			return nil, err
		}
		if (u.Mode == store.Pooled) != u.Tenant.IsZero() {
			return nil, fmt.Errorf("postgres: unit %s: pooled units have no tenant, schema and database units have one", u)
		}
		switch u.Mode {
		case store.Pooled:
			bySchema[pooledSchema] = u
		case store.Schema:
			bySchema[u.Tenant.StorageName()] = u
		case store.Database:
			databases = append(databases, u)
		}
	}
	if err := b.databaseVersions(ctx, databases, out); err != nil {
		return nil, err
	}
	if len(bySchema) == 0 {
		return out, nil
	}
	names := make([]string, 0, len(bySchema))
	for s := range bySchema {
		names = append(names, s)
	}
	// Which schemas exist, and which of them record versions.
	rows, err := b.admin.Query(ctx, `SELECT n.nspname, c.oid IS NOT NULL FROM pg_namespace n
		LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'schema_migrations'
		WHERE n.nspname = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("postgres: read unit versions: %w", err)
	}
	exists, recorded := map[string]bool{}, []string{}
	for rows.Next() {
		var s string
		var has bool
		if err := rows.Scan(&s, &has); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: read unit versions: %w", err)
		}
		exists[s] = true
		if has {
			recorded = append(recorded, s)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read unit versions: %w", err)
	}
	for s, u := range bySchema {
		if !exists[s] {
			return nil, fmt.Errorf("postgres: unit %s: its schema does not exist (%w)", u, store.ErrUnknownTenant)
		}
		out[u] = 0
	}
	for len(recorded) > 0 {
		n := min(len(recorded), versionBatch)
		batch := recorded[:n]
		recorded = recorded[n:]
		var q strings.Builder
		args := make([]any, len(batch))
		for i, s := range batch {
			if i > 0 {
				q.WriteString("\nUNION ALL ")
			}
			q.WriteString(`SELECT $` + strconv.Itoa(i+1) + `::text, coalesce(max(version), 0)::int FROM ` + ident(s, "schema_migrations"))
			args[i] = s
		}
		rows, err := b.admin.Query(ctx, q.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("postgres: read unit versions: %w", err)
		}
		for rows.Next() {
			var s string
			var v int
			if err := rows.Scan(&s, &v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("postgres: read unit versions: %w", err)
			}
			out[bySchema[s]] = v
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("postgres: read unit versions: %w", err)
		}
	}
	return out, nil
}

// versionConns is how many tenant databases UnitVersions reads at once.
const versionConns = 4

// databaseVersions reads the versions of database units into out, a few
// databases at a time.
func (b *Backend) databaseVersions(ctx context.Context, units []migrate.Unit, out map[migrate.Unit]int) error {
	vs := make([]int, len(units))
	errs := make([]error, len(units))
	sem := make(chan struct{}, versionConns)
	var wg sync.WaitGroup
	for i, u := range units {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if vs[i], errs[i] = b.databaseVersion(ctx, b.dbName(u.Tenant)); errs[i] != nil {
				errs[i] = fmt.Errorf("postgres: unit %s: %w", u, errs[i])
			}
		}()
	}
	wg.Wait()
	for i, u := range units {
		if errs[i] != nil {
			return errs[i]
		}
		out[u] = vs[i]
	}
	return nil
}

// databaseVersion reads the version recorded in tenant database dbName.
func (b *Backend) databaseVersion(ctx context.Context, dbName string) (int, error) {
	conn, err := b.adminConn(ctx, dbName)
	if err != nil {
		return 0, fmt.Errorf("connect as admin: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var has bool
	table := ident(pooledSchema, "schema_migrations")
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&has); err != nil {
		return 0, fmt.Errorf("read version: %w", err)
	}
	if !has {
		return 0, nil
	}
	var v int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0)::int FROM `+table).Scan(&v); err != nil {
		return 0, fmt.Errorf("read version: %w", err)
	}
	return v, nil
}
