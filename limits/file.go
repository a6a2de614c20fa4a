package limits

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// FileConfig is the content of a limits file:
//
//	{
//	  "tiers":   {"free": {"max_records": 5000}},
//	  "tenants": {"acme": {"requests_per_second": 20, "burst": 40}}
//	}
//
// Tiers adjust the built-in defaults of a known tier; Tenants override one
// tenant and win over everything else. Both are optional.
type FileConfig struct {
	Tiers   map[string]Overrides `json:"tiers,omitempty"`
	Tenants map[string]Overrides `json:"tenants,omitempty"`
}

// ParseFile decodes and validates a limits file: unknown fields, unknown
// tiers, invalid tenant ids and out-of-range values are errors.
func ParseFile(b []byte) (*FileConfig, error) {
	var fc FileConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	defaults := Defaults()
	for name, o := range fc.Tiers {
		if _, ok := defaults[name]; !ok {
			return nil, fmt.Errorf("%w: unknown tier %q (use free, standard or enterprise)", ErrInvalid, name)
		}
		if err := o.Validate(); err != nil {
			return nil, fmt.Errorf("tier %s: %w", name, err)
		}
	}
	for id, o := range fc.Tenants {
		if _, err := tenant.Parse(id); err != nil {
			return nil, fmt.Errorf("%w: tenant %q: %v", ErrInvalid, id, err)
		}
		if err := o.Validate(); err != nil {
			return nil, fmt.Errorf("tenant %s: %w", id, err)
		}
	}
	return &fc, nil
}

// File is a limits file that is reread on change. A version that fails to
// read or parse is logged and ignored: the last good version stays in
// force. It is safe for concurrent use.
type File struct {
	path string
	log  *slog.Logger

	cur atomic.Pointer[FileConfig]

	mu   sync.Mutex // serializes Reload
	seen []byte     // the content last considered, good or bad
}

// OpenFile reads the limits file at path; it must exist and parse. log
// receives reload failures (nil: discarded).
func OpenFile(path string, log *slog.Logger) (*File, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("limits file: %w", err)
	}
	fc, err := ParseFile(b)
	if err != nil {
		return nil, fmt.Errorf("limits file %s: %w", path, err)
	}
	f := &File{path: path, log: log, seen: b}
	f.cur.Store(fc)
	return f, nil
}

// Config returns the version in force.
func (f *File) Config() *FileConfig { return f.cur.Load() }

// Reload rereads the file. It reports whether a new version took effect;
// an unchanged file does nothing, and a file that cannot be read or parsed
// is logged (once per distinct content) and returned as the error while
// the last good version stays in force.
func (f *File) Reload() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := os.ReadFile(f.path)
	if err != nil {
		f.log.Warn("limits file unreadable; keeping the last good version", slog.String("path", f.path), slog.String("error", err.Error()))
		return false, fmt.Errorf("limits file: %w", err)
	}
	if bytes.Equal(b, f.seen) {
		return false, nil
	}
	f.seen = b
	fc, err := ParseFile(b)
	if err != nil {
		f.log.Error("limits file rejected; keeping the last good version", slog.String("path", f.path), slog.String("error", err.Error()))
		return false, fmt.Errorf("limits file %s: %w", f.path, err)
	}
	f.cur.Store(fc)
	f.log.Info("limits file reloaded", slog.String("path", f.path))
	return true, nil
}

// Watch polls the file every interval (default 2s) until ctx ends.
func (f *File) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = f.Reload()
		}
	}
}
