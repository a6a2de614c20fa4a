package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
)

var _ migrate.VersionReader = (*Backend)(nil)

// UnitVersions implements migrate.VersionReader: the version of each
// database-mode tenant among units, read from its own file's
// schema_migrations table (0 when the file records none). The pooled units
// of the shard are absent from the result: the pooled file holds no team
// tables (see ErrNoPooledUnit). It reads only; a tenant without a file is
// an error wrapping store.ErrUnknownTenant.
func (b *Backend) UnitVersions(ctx context.Context, units []migrate.Unit) (map[migrate.Unit]int, error) {
	out := make(map[migrate.Unit]int, len(units))
	for _, u := range units {
		if u.Mode == store.Pooled {
			continue
		}
		if err := b.check(u.Tenant, u.Mode); err != nil {
			return nil, fmt.Errorf("sqlite: unit %s: %w", u, err)
		}
		v, err := b.fileVersion(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("sqlite: unit %s: %w", u, err)
		}
		out[u] = v
	}
	return out, nil
}

// fileVersion reads the migration version of u's file.
func (b *Backend) fileVersion(ctx context.Context, u migrate.Unit) (int, error) {
	h, err := b.acquire(u.Tenant)
	if err != nil {
		return 0, err
	}
	defer b.release(h)
	var v int
	err = h.read.QueryRowContext(own(ctx), sqlMigrationsVersion).Scan(&v)
	if err != nil && strings.Contains(err.Error(), "no such table") {
		return 0, nil // a file made before Bulkhead recorded versions
	}
	if err != nil {
		return 0, fmt.Errorf("read version: %w", err)
	}
	return v, nil
}
