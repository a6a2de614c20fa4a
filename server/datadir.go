package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
)

// serveLockFile is the file in the data directory that the running server
// holds an exclusive lock on, whatever its stores (SQLite or PostgreSQL).
// It records who holds it: a second server is refused and names the first.
const serveLockFile = "serve.lock"

// ErrDataDirLocked reports a data directory that another server (another
// bulkhead serve, or another Server in this process) holds.
var ErrDataDirLocked = errors.New("data directory is in use")

// lockHolder is what the server holding a data directory writes into its
// lock file.
type lockHolder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host,omitempty"`
	Started time.Time `json:"started"`
}

func (h lockHolder) String() string {
	if h.PID == 0 {
		return "a process that has not yet written its pid"
	}
	s := fmt.Sprintf("pid %d", h.PID)
	if h.Host != "" {
		s += " on " + h.Host
	}
	return s + ", started " + h.Started.UTC().Format(time.RFC3339)
}

// dirLock is a held data-directory lock; release lets it go (as does the
// process's exit).
type dirLock struct{ f *os.File }

func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// lockDataDir takes the exclusive lock of data directory dir without
// waiting and records this process in it. While another server holds it,
// the error wraps ErrDataDirLocked and names that server's pid and start
// time.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, serveLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		if !errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("lock data directory: %w", err)
		}
		var h lockHolder
		if b, rerr := os.ReadFile(path); rerr == nil {
			_ = json.Unmarshal(b, &h)
		}
		return nil, fmt.Errorf("%w: %s is held by another bulkhead serve (%s); "+
			"one server owns a data directory: stop that one first, or give this one its own --data-dir "+
			"(several instances need PostgreSQL, see docs/operations.md)", ErrDataDirLocked, path, h)
	}
	host, _ := os.Hostname()
	b, _ := json.Marshal(lockHolder{PID: os.Getpid(), Host: host, Started: processStart})
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(append(b, '\n'), 0)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write lock file: %w", err)
	}
	return &dirLock{f: f}, nil
}

// processStart is when this process started, as the lock file records it.
var processStart = time.Now()

// Modes of everything in the data directory: only the server's user may
// read the catalog, the audit log, the records and the secrets.
const (
	privateFileMode fs.FileMode = 0o600
	privateDirMode  fs.FileMode = 0o700
)

// ownEntry reports whether name, an entry of the data directory, is one
// the server or its stores make: the catalog, the audit log and the pooled
// records with their -wal, -shm and -journal files, the secrets, the locks
// and the tenants directory. Anything else someone put there is left alone.
func ownEntry(name string) bool {
	switch name {
	case operatorTokenFile, cursorKeyFile, serveLockFile, sqlite.LockFile, "tenants":
		return true
	}
	for _, db := range []string{catalogFile, audit.FileName, "pooled.db"} {
		if name == db || strings.HasPrefix(name, db+"-") {
			return true
		}
	}
	return false
}

// privatizeDataDir makes dir and what the server keeps in it private:
// directories 0700, files 0600 (the directory itself, ownEntry's entries,
// and everything under tenants/). A looser mode found (an older version
// created control.db and audit.db 0644; an operator may have made the
// directory 0777) is tightened, with a warning naming the path and both
// modes. It is fixed rather than refused because nobody but the server's
// user has any business reading these files, and refusing would stop every
// upgraded server until someone ran chmod by hand. Symbolic links are not
// followed.
func privatizeDataDir(dir string, log *slog.Logger) error {
	if err := privatize(dir, log); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read data directory: %w", err)
	}
	for _, e := range entries {
		if !ownEntry(e.Name()) || e.Type()&fs.ModeSymlink != 0 {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if !e.IsDir() {
			if err := privatize(path, log); err != nil {
				return err
			}
			continue
		}
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type()&fs.ModeSymlink != 0 {
				return nil
			}
			return privatize(p, log)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// privatize tightens the mode of path (not a symbolic link) to 0700 for a
// directory or 0600 for a file, logging a warning if it was looser.
func privatize(path string, log *slog.Logger) error {
	info, err := os.Lstat(path)
	if err != nil {
		return err
	}
	want := privateFileMode
	if info.IsDir() {
		want = privateDirMode
	}
	if info.Mode().Perm()&^want == 0 {
		return nil
	}
	if err := os.Chmod(path, want); err != nil {
		return fmt.Errorf("make %s private: %w", path, err)
	}
	log.Warn("data directory: a looser mode was tightened",
		slog.String("path", path),
		slog.String("was", fmt.Sprintf("%#o", info.Mode().Perm())),
		slog.String("now", fmt.Sprintf("%#o", want)))
	return nil
}

// createPrivate creates the file at path with mode 0600 if it does not
// exist, so that SQLite, which gives a new database the process's default
// mode (0644) and its -wal and -shm files the mode of the database, keeps
// them all private.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, privateFileMode)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Base(path), err)
	}
	return f.Close()
}
