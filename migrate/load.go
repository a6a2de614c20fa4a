package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// ErrInvalidMigrations reports a migrations directory Load refuses: a file
// name that is not NNNN_name.sql, two files with one version, a gap in the
// versions, or an empty file.
var ErrInvalidMigrations = errors.New("invalid migrations")

// Load reads the migrations in the root directory of fsys: files named
// NNNN_name.sql or NNNN_name.up.sql, where NNNN is the version (decimal,
// leading zeros allowed) and name is letters, digits, '_' or '-'. Versions
// must run 1, 2, 3… without gaps or duplicates. Files ending in .down.sql
// are ignored (Bulkhead migrates forward only), as are subdirectories and
// files that do not end in .sql. The result is sorted by version.
//
// For an embedded directory, pass fs.Sub(migrationsFS, "migrations"), or
// use LoadDir.
func Load(fsys fs.FS) ([]Migration, error) {
	return LoadDir(fsys, ".")
}

// LoadDir is Load for the directory dir of fsys, for example
//
//	//go:embed migrations/*.sql
//	var migrationsFS embed.FS
//	ms, err := migrate.LoadDir(migrationsFS, "migrations")
func LoadDir(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	byVersion := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") || strings.HasSuffix(name, ".down.sql") {
			continue
		}
		v, label, err := parseName(name)
		if err != nil {
			return nil, err
		}
		if other, dup := byVersion[v]; dup {
			return nil, fmt.Errorf("%w: %s and %s both have version %d (renumber one of them)",
				ErrInvalidMigrations, other, name, v)
		}
		byVersion[v] = name
		body, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		if strings.TrimSpace(string(body)) == "" {
			return nil, fmt.Errorf("%w: %s is empty (write its SQL or remove it)", ErrInvalidMigrations, name)
		}
		ms = append(ms, Migration{Version: v, Name: label, SQL: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	if err := Check(ms); err != nil {
		return nil, err
	}
	return ms, nil
}

// parseName splits "0003_add_index.sql" (or ".up.sql") into 3 and "add_index".
func parseName(file string) (int, string, error) {
	bad := func(why string) (int, string, error) {
		return 0, "", fmt.Errorf("%w: file %q %s (name migrations NNNN_name.sql, e.g. 0001_create_invoices.sql)",
			ErrInvalidMigrations, file, why)
	}
	base := strings.TrimSuffix(strings.TrimSuffix(file, ".sql"), ".up")
	num, label, ok := strings.Cut(base, "_")
	if !ok || num == "" {
		return bad("has no version prefix")
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return bad("has a version that is not a number")
		}
	}
	if len(num) > 9 {
		return bad("has a version that is too long")
	}
	v, _ := strconv.Atoi(num)
	if v < 1 {
		return bad("has version 0 (versions start at 1)")
	}
	if label == "" {
		return bad("has no name after the version")
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return bad("has a name with characters other than letters, digits, '_' and '-'")
		}
	}
	return v, label, nil
}

// Check reports whether ms is a usable migration list: versions 1, 2, 3…
// in order, each with SQL. Load's result always passes; Check is for lists
// built by hand.
func Check(ms []Migration) error {
	for i, m := range ms {
		if m.Version != i+1 {
			if i > 0 && m.Version == ms[i-1].Version {
				return fmt.Errorf("%w: version %d appears twice (renumber one of them)", ErrInvalidMigrations, m.Version)
			}
			return fmt.Errorf("%w: expected version %d, found %d %q (versions start at 1 and have no gaps)",
				ErrInvalidMigrations, i+1, m.Version, m.Name)
		}
		if strings.TrimSpace(m.SQL) == "" {
			return fmt.Errorf("%w: version %d %q has no SQL", ErrInvalidMigrations, m.Version, m.Name)
		}
	}
	return nil
}

// Latest is the highest version in ms (0 for none).
func Latest(ms []Migration) int {
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}
