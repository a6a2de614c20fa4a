//go:build unix

package sqlite

import (
	"errors"
	"testing"
)

func TestOneBackendOwnsADataDirectory(t *testing.T) {
	dir := t.TempDir()
	first := open(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open while the first is open: %v, want ErrLocked", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := open(t, dir, Options{})
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}
