package sqlite

import (
	"fmt"

	"github.com/bulkhead-dev/bulkhead/internal/datadir"
)

// LockFile is the file in a data directory that the process owning the
// directory holds an exclusive lock on.
const LockFile = "bulkhead.lock"

// ErrLocked reports a data directory that another Backend, in this process
// or another (a running bulkhead serve, a bulkhead migrate), has open.
var ErrLocked = datadir.ErrLocked

// lockDir takes the exclusive, non-blocking lock of data directory dir;
// releasing it (or the process's exit) lets it go.
func lockDir(dir string) (*datadir.Lock, error) {
	l, err := datadir.Acquire(dir, LockFile)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w; one process owns a SQLite data directory: stop it first, or use its API", err)
	}
	return l, nil
}
