package policy

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cedar "github.com/cedar-policy/cedar-go"
)

// DefaultPollInterval is how often Watch looks at the policy directory.
const DefaultPollInterval = time.Second

// Options configure an Engine.
type Options struct {
	// Dir is an optional policy directory (--policy-dir): its *.cedar files
	// are added to the embedded default set, and a default.cedar in it
	// replaces the embedded default.
	Dir string
	// Logger receives reload and evaluation-error messages; nil discards them.
	Logger *slog.Logger
	// PollInterval is how often Watch checks Dir; zero means DefaultPollInterval.
	PollInterval time.Duration
}

// Engine authorizes requests against a Cedar policy set. Authorize is safe
// for concurrent use, also while Watch or Reload swap in a new set: each
// evaluation uses one complete set, never a mix.
type Engine struct {
	dir  string
	log  *slog.Logger
	poll time.Duration
	set  atomic.Pointer[policySet]
	ents entityCache

	mu     sync.Mutex // serialises reloads; guards stat and failed
	stat   string     // names, sizes and mtimes of Dir's .cedar files at the last look
	failed [32]byte   // digest of the last set that failed to parse (logged once)
}

// New loads the default set and Dir's policies. A parse error in Dir is an
// error here (a server must not start on a broken policy set); later,
// Reload and Watch keep the last good set instead.
func New(opts Options) (*Engine, error) {
	e := &Engine{dir: opts.Dir, log: opts.Logger, poll: opts.PollInterval}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.poll <= 0 {
		e.poll = DefaultPollInterval
	}
	if e.dir != "" {
		fi, err := os.Stat(e.dir)
		if err != nil {
			return nil, fmt.Errorf("policy directory: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("policy directory %q is not a directory", e.dir)
		}
	}
	e.stat = statDir(e.dir)
	set, err := loadDir(e.dir)
	if err != nil {
		return nil, fmt.Errorf("load policies: %w", err)
	}
	e.set.Store(set)
	return e, nil
}

// Policies returns the ids of the policies in force, in file order.
func (e *Engine) Policies() []string {
	return append([]string(nil), e.set.Load().ids...)
}

// Authorize decides r against the current policy set. The error is non-nil
// only for a request the model cannot express (it wraps ErrInvalidRequest);
// the decision is then a deny.
func (e *Engine) Authorize(ctx context.Context, r Request) (Decision, error) {
	req, es, err := e.ents.build(r)
	if err != nil {
		return Decision{}, err
	}
	set := e.set.Load()
	dec, diag := cedar.Authorize(set.ps, es, req)
	for _, de := range diag.Errors {
		e.log.WarnContext(ctx, "policy evaluation error (the policy was skipped)",
			"policy", string(de.PolicyID), "error", de.Message, "action", r.Action)
	}
	d := Decision{Allow: dec == cedar.Allow}
	if len(diag.Reasons) > 0 {
		d.Policies = make([]string, len(diag.Reasons))
		for i, rs := range diag.Reasons {
			d.Policies[i] = string(rs.PolicyID)
		}
	}
	return d, nil
}

// Reload re-reads Dir now. If the new set does not parse, the current set
// stays in force and the error says which file and line are wrong.
func (e *Engine) Reload() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stat = statDir(e.dir)
	return e.reloadLocked()
}

func (e *Engine) reloadLocked() error {
	files, err := snapshot(e.dir)
	if err != nil {
		return fmt.Errorf("reload policies: %w", err)
	}
	sum := digest(files)
	if sum == e.set.Load().sum {
		return nil
	}
	set, err := compile(files)
	if err != nil {
		if sum != e.failed {
			e.failed = sum
			e.log.Error("policy reload failed; keeping the last good policy set", "dir", e.dir, "error", err)
		}
		return fmt.Errorf("reload policies (keeping the last good set): %w", err)
	}
	e.set.Store(set)
	e.log.Info("policies reloaded", "dir", e.dir, "files", len(set.files), "policies", len(set.ids))
	return nil
}

// Watch polls Dir about once per PollInterval and reloads it when a .cedar
// file is added, removed or changed (name, size and mtime each poll, the
// content hash every tenth),
// until ctx ends. A set that fails to parse is logged once and the last
// good set stays in force. Without a Dir, Watch just waits for ctx.
func (e *Engine) Watch(ctx context.Context) {
	if e.dir == "" {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(e.poll)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.mu.Lock()
			// The stat check is cheap; every tenth poll also hashes the
			// contents, catching a same-size rewrite within one mtime tick.
			if st := statDir(e.dir); st != e.stat || n%10 == 0 {
				e.stat = st
				_ = e.reloadLocked() // logged inside
			}
			e.mu.Unlock()
		}
	}
}

// statDir describes dir's .cedar files cheaply (no reads): a change in any
// name, size or mtime changes the result.
func statDir(dir string) string {
	if dir == "" {
		return ""
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, en := range entries {
		if en.IsDir() || !strings.HasSuffix(en.Name(), ".cedar") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, en.Name()))
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "%s\x00%d\x00%d\n", en.Name(), fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}
