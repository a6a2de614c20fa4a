package migrate_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bulkhead-dev/bulkhead/migrate"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestLoadSortsAndSkipsWhatIsNotAMigration(t *testing.T) {
	fsys := fstest.MapFS{
		"0002_add_total.up.sql":      file("ALTER TABLE invoices ADD total int;"),
		"0001_create_invoices.sql":   file("CREATE TABLE invoices (tenant_id text);"),
		"0003_index.sql":             file("CREATE INDEX i ON invoices (tenant_id);"),
		"0003_index.down.sql":        file("DROP INDEX i;"),
		"README.md":                  file("notes"),
		"old/0009_ignored_in_subdir": file("x"),
	}
	ms, err := migrate.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		v    int
		name string
	}{{1, "create_invoices"}, {2, "add_total"}, {3, "index"}}
	if len(ms) != len(want) {
		t.Fatalf("got %d migrations %+v, want %d", len(ms), ms, len(want))
	}
	for i, w := range want {
		if ms[i].Version != w.v || ms[i].Name != w.name {
			t.Errorf("migration %d = %d %q, want %d %q", i, ms[i].Version, ms[i].Name, w.v, w.name)
		}
	}
	if !strings.Contains(ms[1].SQL, "ADD total") {
		t.Errorf("migration 2 SQL = %q", ms[1].SQL)
	}
	if migrate.Latest(ms) != 3 {
		t.Errorf("Latest = %d, want 3", migrate.Latest(ms))
	}
}

func TestLoadDirReadsASubdirectory(t *testing.T) {
	ms, err := migrate.LoadDir(fstest.MapFS{"migrations/1_a.sql": file("select 1")}, "migrations")
	if err != nil || len(ms) != 1 || ms[0].Version != 1 {
		t.Fatalf("LoadDir = %+v, %v", ms, err)
	}
	if _, err := migrate.LoadDir(fstest.MapFS{}, "missing"); err == nil {
		t.Fatal("LoadDir of a missing directory succeeded")
	}
}

func TestLoadRefusesBadDirectories(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"a duplicate version", map[string]string{"0001_a.sql": "x", "1_b.sql": "y"}, "both have version 1"},
		{"a gap", map[string]string{"0001_a.sql": "x", "0003_c.sql": "y"}, "expected version 2, found 3"},
		{"no version 1", map[string]string{"0002_b.sql": "x"}, "expected version 1, found 2"},
		{"version 0", map[string]string{"0000_a.sql": "x"}, "version 0"},
		{"no version", map[string]string{"create.sql": "x"}, "no version prefix"},
		{"a non-numeric version", map[string]string{"v1_create.sql": "x"}, "not a number"},
		{"no name", map[string]string{"0001_.sql": "x"}, "no name"},
		{"a name with spaces", map[string]string{"0001_add total.sql": "x"}, "characters other than"},
		{"a huge version", map[string]string{"12345678901_a.sql": "x"}, "too long"},
		{"an empty file", map[string]string{"0001_a.sql": " \n\t"}, "is empty"},
	}
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for n, body := range tt.files {
				fsys[n] = file(body)
			}
			_, err := migrate.Load(fsys)
			if !errors.Is(err, migrate.ErrInvalidMigrations) {
				t.Fatalf("Load = %v, want ErrInvalidMigrations", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestLoadOfNoMigrationsIsEmpty(t *testing.T) {
	ms, err := migrate.Load(fstest.MapFS{"README": file("x")})
	if err != nil || len(ms) != 0 {
		t.Fatalf("Load = %v, %v; want no migrations", ms, err)
	}
}

func FuzzLoadName(f *testing.F) {
	for _, s := range []string{"0001_a.sql", "1_b.up.sql", "x.sql", "0001_.sql", "99999999999_a.sql"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if strings.ContainsAny(name, "/\x00") || name == "" || name == "." || name == ".." {
			return
		}
		ms, err := migrate.Load(fstest.MapFS{name: file("select 1")})
		if err != nil {
			return
		}
		if err := migrate.Check(ms); err != nil {
			t.Fatalf("Load result fails Check: %v", err)
		}
	})
}
