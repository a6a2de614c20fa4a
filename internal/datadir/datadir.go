// Package datadir keeps a data directory to one owner and private: an
// exclusive, non-blocking lock file that records who holds it, and the
// modes (0700 directories, 0600 files) of what the owner keeps there.
// The server and the SQLite backend share it.
package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// ErrLocked reports a lock file that another owner (another process, or
// another open handle in this one) holds.
var ErrLocked = errors.New("data directory is in use")

// Holder is what the owner of a lock writes into the lock file.
type Holder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host,omitempty"`
	Started time.Time `json:"started"`
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "a process that has not written its pid"
	}
	s := fmt.Sprintf("pid %d", h.PID)
	if h.Host != "" {
		s += " on " + h.Host
	}
	return s + ", started " + h.Started.UTC().Format(time.RFC3339)
}

// Lock is a held lock; Release lets it go (as does the process's exit).
type Lock struct{ f *os.File }

// Release releases the lock. It is safe to call more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// processStart is when this process started, as lock files record it.
var processStart = time.Now()

// Acquire takes the exclusive lock of file name in dir without waiting and
// records this process in it. While another owner holds it, the error
// wraps ErrLocked and names the holder (pid, host, start time) when it
// recorded itself.
func Acquire(dir, name string) (*Lock, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, PrivateFile)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		if !errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		var h Holder
		if b, rerr := os.ReadFile(path); rerr == nil {
			_ = json.Unmarshal(b, &h)
		}
		return nil, fmt.Errorf("%w: %s is held by %s", ErrLocked, path, h)
	}
	host, _ := os.Hostname()
	b, _ := json.Marshal(Holder{PID: os.Getpid(), Host: host, Started: processStart})
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(append(b, '\n'), 0)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write lock file: %w", err)
	}
	return &Lock{f: f}, nil
}

// Modes of what an owner keeps in its data directory.
const (
	PrivateFile fs.FileMode = 0o600
	PrivateDir  fs.FileMode = 0o700
)

// Privatize makes dir and its entries for which own is true private:
// directories 0700, files 0600. A looser mode is tightened with a warning
// naming the path and both modes. It does not descend into directories: a
// 0700 directory already keeps everyone else out of all that is under it,
// and walking, say, a SQLite backend's tenants directory would cost a stat
// per tenant file at every start (its files are created 0600 anyway).
// Symbolic links are not followed; other entries are left alone.
func Privatize(dir string, own func(name string) bool, log *slog.Logger) error {
	if err := privatize(dir, log); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read data directory: %w", err)
	}
	for _, e := range entries {
		if !own(e.Name()) || e.Type()&fs.ModeSymlink != 0 {
			continue
		}
		if err := privatize(filepath.Join(dir, e.Name()), log); err != nil {
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
	want := PrivateFile
	if info.IsDir() {
		want = PrivateDir
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

// CreatePrivate creates the file at path with mode 0600 if it does not
// exist, so that SQLite, which gives a new database the process's default
// mode (0644) and its -wal and -shm files the mode of the database, keeps
// them all private.
func CreatePrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, PrivateFile)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Base(path), err)
	}
	return f.Close()
}

// WriteOnce creates path with data and mode 0600 unless it exists. The
// file appears whole or not at all: data is written and synced to a
// temporary file first, then hard-linked into place, which fails if
// another process got there first.
func WriteOnce(path string, data []byte) (created bool, err error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(PrivateFile); err != nil {
		f.Close()
		return false, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return true, nil
}
