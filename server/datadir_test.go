package server_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
)

// fileModes returns the permission bits of everything under dir, by path
// relative to dir.
func fileModes(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	m := map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		m[rel] = info.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkPrivate fails t for anything in dir but 0700 directories and 0600
// files.
func checkPrivate(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	m := fileModes(t, dir)
	for rel, mode := range m {
		info, _ := os.Lstat(filepath.Join(dir, rel))
		want := fs.FileMode(0o600)
		if info.IsDir() {
			want = 0o700
		}
		if mode != want {
			t.Errorf("%s has mode %#o, want %#o", rel, mode, want)
		}
	}
	return m
}

func TestEverythingInTheDataDirIsPrivate(t *testing.T) {
	e := newEnv(t)
	e.tenantWithKey("acme", "pooled")
	e.tenantWithKey("globex", "database")
	m := checkPrivate(t, e.dir)
	// The files the issue found 0644, while the server runs (WAL mode).
	for _, f := range []string{"control.db", "control.db-wal", "control.db-shm", "audit.db", "audit.db-wal", "audit.db-shm"} {
		if _, ok := m[f]; !ok {
			t.Errorf("%s is not in the data dir: %v", f, m)
		}
	}
}

func TestALooserDataDirIsTightenedWithAWarning(t *testing.T) {
	dir := t.TempDir()
	e := newEnvIn(t, dir, server.Options{})
	e.tenantWithKey("acme", "database")
	e.close()
	// As an older version left it, and an operator loosened it.
	for _, p := range []string{"", "control.db", "audit.db", "tenants"} {
		mode := fs.FileMode(0o644)
		if p == "" || p == "tenants" {
			mode = 0o777
		}
		if err := os.Chmod(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
	}

	// Files that are not the server's are left alone.
	notOurs := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notOurs, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(notOurs, 0o644); err != nil {
		t.Fatal(err)
	}

	e = newEnvIn(t, dir, server.Options{})
	if info, err := os.Stat(notOurs); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("a file that is not the server's was changed: %v %v", info.Mode(), err)
	}
	if err := os.Remove(notOurs); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir)
	logs := e.logs.String()
	for _, want := range []string{`"path":"` + dir + `"`, filepath.Join(dir, "control.db"), `"was":"0777"`, `"was":"0644"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("no warning names %s:\n%s", want, logs)
		}
	}
}

func TestASecondServerOnADataDirIsRefused(t *testing.T) {
	e := newEnv(t)
	_, err := server.Open(context.Background(), server.Options{DataDir: e.dir, Logger: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, server.ErrDataDirLocked) {
		t.Fatalf("a second server on the data dir: %v", err)
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("the error does not name the holder's pid: %v", err)
	}
	e.close()
	s, err := server.Open(context.Background(), server.Options{DataDir: e.dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("a server once the first one closed: %v", err)
	}
	s.Close()
}
