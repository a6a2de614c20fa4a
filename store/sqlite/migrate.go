package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var _ migrate.Applier = (*Backend)(nil)

// sqlMigrationsSchema records the team's migrations applied to a tenant
// file, as on PostgreSQL: one row per version.
const sqlMigrationsSchema = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at INTEGER NOT NULL
) STRICT`

const (
	sqlMigrationsVersion = `SELECT coalesce(max(version), 0) FROM schema_migrations`
	sqlMigrationsRecord  = `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)`
)

// ErrNoPooledUnit reports a migration unit for the pooled file of a SQLite
// shard. No team SQL runs there (see BeginSQL), so it holds no team tables
// and is not a migration unit; migrate the shard's database-mode tenants.
var ErrNoPooledUnit = fmt.Errorf("%w: a SQLite pooled file holds no team tables and is not a migration unit "+
	"(team SQL runs only in database-mode tenants, one file each)", store.ErrIsolationUnsupported)

// Apply implements migrate.Applier for a database-mode tenant's file: it
// applies the migrations of ms above the file's current version in order,
// one transaction per migration, recording each in the file's own
// schema_migrations table (so Apply is idempotent, and the file's single
// writer serializes concurrent runs), and returns the file's new version.
// Migration versions must be positive and distinct. Each migration runs
// guarded like the team's own SQL (see BeginSQL): it may create and change
// the team's tables but not Bulkhead's, nor reach another file.
//
// A unit must name a database-mode tenant that has been provisioned; the
// pooled unit of a SQLite shard gets ErrNoPooledUnit. Apply does not check
// the unit's shard name: the migrate runner picks the applier by shard.
func (b *Backend) Apply(ctx context.Context, u migrate.Unit, ms []migrate.Migration) (int, error) {
	if u.Mode == store.Pooled {
		return 0, fmt.Errorf("sqlite: unit %s: %w", u, ErrNoPooledUnit)
	}
	if u.Tenant.IsZero() {
		return 0, fmt.Errorf("sqlite: unit %s: a database unit names its tenant", u)
	}
	if err := b.check(u.Tenant, u.Mode); err != nil {
		return 0, fmt.Errorf("sqlite: unit %s: %w", u, err)
	}
	ms, err := sortedMigrations(ms)
	if err != nil {
		return 0, fmt.Errorf("sqlite: unit %s: %w", u, err)
	}
	h, err := b.acquire(u.Tenant)
	if err != nil {
		return 0, fmt.Errorf("sqlite: unit %s: %w", u, err)
	}
	defer b.release(h)
	cur := 0
	err = h.migrate(ctx, func(tx *sql.Tx) error { return readVersion(ctx, tx, &cur) })
	if err != nil {
		return 0, fmt.Errorf("sqlite: unit %s: %w", u, err)
	}
	for _, m := range ms {
		if m.Version <= cur {
			continue
		}
		err := h.migrate(ctx, func(tx *sql.Tx) error {
			if err := readVersion(ctx, tx, &cur); err != nil || m.Version <= cur {
				return err // applied meanwhile
			}
			if err := runMigration(ctx, tx, m); err != nil {
				return err
			}
			cur = m.Version
			return nil
		})
		if err != nil {
			return cur, fmt.Errorf("sqlite: unit %s: migration %d (%s): %w", u, m.Version, m.Name, err)
		}
	}
	return cur, nil
}

// sortedMigrations returns ms by version, or an error if a version is not
// positive or repeats.
func sortedMigrations(ms []migrate.Migration) ([]migrate.Migration, error) {
	ms = append([]migrate.Migration(nil), ms...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version <= 0 || i > 0 && ms[i-1].Version == m.Version {
			return nil, fmt.Errorf("migration versions must be positive and distinct (%d)", m.Version)
		}
	}
	return ms, nil
}

// migrate runs fn in a guarded write transaction on the file, after making
// sure Bulkhead's tables exist, and commits if fn returns nil.
func (h *handle) migrate(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := h.write.BeginTx(guarded(ctx), nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := ensureOwnTables(ctx, tx); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// readVersion reads the file's migration version into v.
func readVersion(ctx context.Context, tx *sql.Tx, v *int) error {
	if err := tx.QueryRowContext(own(ctx), sqlMigrationsVersion).Scan(v); err != nil {
		return fmt.Errorf("read version: %w", err)
	}
	return nil
}

// runMigration runs m's SQL as team SQL (under the guard) and records it.
func runMigration(ctx context.Context, tx *sql.Tx, m migrate.Migration) error {
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(own(ctx), sqlMigrationsRecord, m.Version, m.Name, micros(time.Now())); err != nil {
		return fmt.Errorf("record version: %w", err)
	}
	return nil
}

// provisionDatabase creates tenant id's file with Bulkhead's tables and
// applies Options.Migrations, all in one transaction, so that a new tenant
// appears complete or not at all: if it fails, a file it created is removed.
// On a file that exists it is idempotent (migrations already recorded are
// skipped).
func (b *Backend) provisionDatabase(ctx context.Context, id tenant.ID) error {
	ms, err := sortedMigrations(b.opts.Migrations)
	if err != nil {
		return fmt.Errorf("sqlite: provision tenant database: %w", err)
	}
	created, err := b.createFile(id)
	if err != nil {
		return err
	}
	err = b.provisionFile(ctx, id, ms)
	if err != nil && created {
		if derr := b.Drop(context.WithoutCancel(ctx), id, store.Database); derr != nil {
			err = errors.Join(err, fmt.Errorf("remove the new file: %w", derr))
		}
	}
	return err
}

func (b *Backend) provisionFile(ctx context.Context, id tenant.ID, ms []migrate.Migration) error {
	h, err := b.acquire(id)
	if err != nil {
		return fmt.Errorf("sqlite: provision tenant database: %w", err)
	}
	defer b.release(h)
	err = h.migrate(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{sqlSchema, sqlUsageSchema, sqlEventsSchema, sqlOffsetsSchema} {
			if _, err := tx.ExecContext(own(ctx), q); err != nil {
				return fmt.Errorf("create schema: %w", err)
			}
		}
		cur := 0
		if err := readVersion(ctx, tx, &cur); err != nil {
			return err
		}
		for _, m := range ms {
			if m.Version <= cur {
				continue
			}
			if err := runMigration(ctx, tx, m); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: provision tenant database: %w", err)
	}
	return nil
}

// fileExists reports whether tenant id's database file exists.
func (b *Backend) fileExists(id tenant.ID) bool {
	_, err := b.root.Lstat(fileName(id))
	return !errors.Is(err, os.ErrNotExist)
}
