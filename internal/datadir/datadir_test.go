//go:build unix

package datadir

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestOneOwnerAtATime(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, "x.lock")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir, "x.lock") // flock belongs to the open file: refused in-process too
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second Acquire: %v, want ErrLocked naming this pid", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(dir, "x.lock")
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	l2.Release()
	if err := l2.Release(); err != nil { // twice is fine
		t.Fatal(err)
	}
}

func TestPrivatize(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	mine, other := filepath.Join(dir, "mine.db"), filepath.Join(dir, "notes.txt")
	for _, p := range []string{mine, other} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(mine, 0o644)
	os.Chmod(other, 0o644)
	sub := filepath.Join(dir, "tenants")
	os.Mkdir(sub, 0o755)
	if err := os.WriteFile(filepath.Join(sub, "t.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	own := func(name string) bool { return name == "mine.db" || name == "tenants" }
	if err := Privatize(dir, own, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	// Under an own directory nothing is walked: the directory's 0700 keeps
	// everyone else out of it.
	for path, want := range map[string]os.FileMode{dir: 0o700, mine: 0o600, sub: 0o700, filepath.Join(sub, "t.db"): 0o644, other: 0o644} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: %#o, want %#o", path, info.Mode().Perm(), want)
		}
	}
}

func TestWriteOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	created, err := WriteOnce(path, []byte("first"))
	if err != nil || !created {
		t.Fatalf("first write: %v %v", created, err)
	}
	created, err = WriteOnce(path, []byte("second"))
	if err != nil || created {
		t.Fatalf("second write: %v %v, want not created", created, err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "first" {
		t.Fatalf("content %q %v, want the first", b, err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != PrivateFile {
		t.Errorf("mode %#o", info.Mode().Perm())
	}
}
