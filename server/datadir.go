package server

import (
	"fmt"
	"strings"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/internal/datadir"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
)

// serveLockFile is the file in the data directory that the running server
// holds an exclusive lock on, whatever its stores (SQLite or PostgreSQL).
// It records who holds it: a second server is refused and names the first.
const serveLockFile = "serve.lock"

// ErrDataDirLocked reports a data directory that another server (another
// bulkhead serve, or another Server in this process) holds.
var ErrDataDirLocked = datadir.ErrLocked

// lockDataDir takes the exclusive lock of data directory dir. While
// another server holds it, the error wraps ErrDataDirLocked and names that
// server's pid and start time.
func lockDataDir(dir string) (*datadir.Lock, error) {
	l, err := datadir.Acquire(dir, serveLockFile)
	if err != nil {
		return nil, fmt.Errorf("%w; one server owns a data directory: stop that one first, or give this one "+
			"a data directory of its own (several instances need PostgreSQL, see docs/operations.md)", err)
	}
	return l, nil
}

// ownEntry reports whether name, an entry of the data directory, is one
// the server or its stores make: the catalog, the audit log and the pooled
// records with their -wal, -shm and -journal files, the secrets, the locks
// and the tenants directory. Anything else someone put there is left alone.
func ownEntry(name string) bool {
	switch name {
	case operatorTokenFile, cursorKeyFile, receiptKeyFile, serveLockFile, sqlite.LockFile, "tenants", keyringFile:
		return true
	}
	for _, db := range []string{catalogFile, audit.FileName, "pooled.db", keysFile} {
		if name == db || strings.HasPrefix(name, db+"-") {
			return true
		}
	}
	return false
}
