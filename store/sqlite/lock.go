package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// LockFile is the file in a data directory that the process owning the
// directory holds an exclusive lock on.
const LockFile = "bulkhead.lock"

// ErrLocked reports a data directory that another Backend, in this process
// or another (a running bulkhead serve, a bulkhead migrate), has open.
var ErrLocked = errors.New("sqlite: data directory is in use")

// lockDir takes the exclusive, non-blocking lock of data directory dir and
// returns the open lock file; closing it releases the lock, as does the
// process's exit.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open lock file: %w", err)
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("%w: %s is held by another process or Backend (a running bulkhead serve?); "+
				"one process owns a SQLite data directory: stop it first, or use its API", ErrLocked, path)
		}
		return nil, fmt.Errorf("sqlite: lock data directory: %w", err)
	}
	return f, nil
}
