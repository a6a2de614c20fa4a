// Package handles keeps a bounded, reference-counted set of per-tenant open
// handles (a SQLite file, a PostgreSQL database pool) for the storage
// backends that give each tenant a database of its own.
//
// A handle opens lazily on first use and counts its users; one with users
// is never closed, so a transaction in flight keeps its database open. Idle
// handles wait in a least recently used list, and once more than the bound
// are open the least recently used idle ones are closed, off the caller's
// path. A tenant being dropped refuses new users and is dropped once the
// users it has are gone.
//
// The backends keep what is theirs: how a handle opens (and what has to be
// checked first), how it closes and how a tenant's storage is removed. The
// set runs the bookkeeping that both need to agree on, so that it is
// written, and fixed, once.
package handles

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Ref is the set's bookkeeping for one handle. The handle holds it (see
// Config.Ref) so that finding it needs no second map; the set alone reads
// and writes it, with the set's mutex held. The zero value is ready: the set
// initializes it when the handle joins the set.
type Ref struct {
	id      tenant.ID
	refs    int           // users (transactions, provisions) in flight
	elem    *list.Element // position in the idle list while refs == 0
	drained chan struct{} // closed when refs reaches 0, for Drop
	closed  chan struct{} // closed once an evicted handle is fully closed
}

// Config configures a Set.
type Config[H comparable] struct {
	// Max bounds the handles kept open once idle. Handles with users are
	// never closed, so while more than Max tenants have users the bound is
	// exceeded until they finish. It must be at least 1.
	Max int
	// Closed is the error Acquire and Drop return once the set is closed:
	// the backend's own ErrClosed, so that callers see one error whichever
	// layer notices.
	Closed error
	// Ref returns the bookkeeping held by h.
	Ref func(h H) *Ref
	// Dropping returns h's dropping flag: true while Drop refuses new users
	// of h. It is held by the handle rather than in Ref so that the backend
	// (and its tests) can read it with the mutex held; only the set writes
	// it.
	Dropping func(h H) *bool
	// Close closes an evicted handle. Its error is dropped: the handle was
	// idle, so there is nobody to report it to.
	Close func(h H) error
}

// Set is a bounded set of open handles of type H (a pointer type), one per
// tenant. It is safe for concurrent use.
type Set[H comparable] struct {
	cfg Config[H]

	// mu is the caller's mutex: the backend makes its own steps atomic
	// with the set's by holding it (SQLite creates a tenant's file and
	// checks it under it, so that no drop removes it meanwhile). Everything
	// below is guarded by it.
	mu      *sync.Mutex
	closed  bool
	open    map[tenant.ID]H // the caller's map, filled by the set
	idle    *list.List      // of H with refs == 0, most recently used first
	closing map[H]tenant.ID // evicted handles being closed
	wg      sync.WaitGroup  // evicted handles being closed
}

// New returns an empty set guarded by mu. open is the map the set keeps
// its open handles in; the caller may read it with mu held, and must not
// write it.
func New[H comparable](mu *sync.Mutex, open map[tenant.ID]H, cfg Config[H]) *Set[H] {
	if cfg.Max < 1 || cfg.Closed == nil || cfg.Ref == nil || cfg.Dropping == nil || cfg.Close == nil {
		panic("handles: incomplete Config") // a programming error in the backend
	}
	return &Set[H]{
		cfg:     cfg,
		mu:      mu,
		open:    open,
		idle:    list.New(),
		closing: make(map[H]tenant.ID),
	}
}

// Acquire returns tenant id's open handle and counts a user of it; Release
// undoes that. If id has no open handle, open opens one (with the mutex
// held, so that it can check the tenant's storage atomically with the set:
// it must be quick and should not block on I/O that can hang); an error from
// open is returned as is and changes nothing. Room is made before the new
// handle joins, so that the bound holds whenever an idle handle can be
// closed.
//
// Acquire returns Config.Closed once the set is closed, and an error
// wrapping store.ErrUnknownTenant while the tenant is being dropped.
func (s *Set[H]) Acquire(id tenant.ID, open func() (H, error)) (H, error) {
	var zero H
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return zero, s.cfg.Closed
	}
	if h, ok := s.open[id]; ok {
		defer s.mu.Unlock()
		if *s.cfg.Dropping(h) {
			return zero, fmt.Errorf("%w: tenant %s database is being dropped", store.ErrUnknownTenant, id)
		}
		r := s.cfg.Ref(h)
		r.refs++
		if r.elem != nil {
			s.idle.Remove(r.elem)
			r.elem = nil
		}
		return h, nil
	}
	h, err := open()
	if err != nil {
		s.mu.Unlock()
		return zero, err
	}
	var evicted []H
	for len(s.open) >= s.cfg.Max && s.idle.Len() > 0 {
		evicted = append(evicted, s.evictLocked(s.idle.Back().Value.(H)))
	}
	*s.cfg.Ref(h) = Ref{id: id, refs: 1, closed: make(chan struct{})}
	s.open[id] = h
	s.mu.Unlock()
	s.closeEvicted(evicted)
	return h, nil
}

// Release ends one use of h, which Acquire returned. When h becomes idle it
// goes to the front of the LRU list and, if more handles are open than
// allowed, the least recently used idle ones are closed.
func (s *Set[H]) Release(h H) {
	s.mu.Lock()
	r := s.cfg.Ref(h)
	r.refs--
	if r.refs > 0 {
		s.mu.Unlock()
		return
	}
	if r.drained != nil {
		close(r.drained)
		r.drained = nil
	}
	var evicted []H
	// Once the set is closed, h is forgotten or being dropped, Close or
	// Drop owns it.
	if !s.closed && s.open[r.id] == h && !*s.cfg.Dropping(h) {
		r.elem = s.idle.PushFront(h)
		for len(s.open) > s.cfg.Max && s.idle.Len() > 0 {
			evicted = append(evicted, s.evictLocked(s.idle.Back().Value.(H)))
		}
	}
	s.mu.Unlock()
	s.closeEvicted(evicted)
}

// forget removes h from the open set; the caller closes it. Called with mu held.
func (s *Set[H]) forget(h H) {
	r := s.cfg.Ref(h)
	if s.open[r.id] == h {
		delete(s.open, r.id)
	}
	if r.elem != nil {
		s.idle.Remove(r.elem)
		r.elem = nil
	}
}

// evictLocked forgets idle handle h and registers it as closing. Called
// with mu held and the set open.
func (s *Set[H]) evictLocked(h H) H {
	s.forget(h)
	s.closing[h] = s.cfg.Ref(h).id
	s.wg.Add(1)
	return h
}

// closeEvicted closes handles evicted by evictLocked, off the caller's path:
// closing can wait on I/O (a checkpoint, a server round trip), and the
// caller is on its way to serve a request.
func (s *Set[H]) closeEvicted(hs []H) {
	for _, h := range hs {
		go func() {
			defer s.wg.Done()
			_ = s.cfg.Close(h) // nothing to report to: the handle was idle
			s.mu.Lock()
			delete(s.closing, h)
			s.mu.Unlock()
			close(s.cfg.Ref(h).closed)
		}()
	}
}

// closingLocked returns a handle of id that is still closing, if any.
// Called with mu held.
func (s *Set[H]) closingLocked(id tenant.ID) (H, bool) {
	for h, hid := range s.closing {
		if hid == id {
			return h, true
		}
	}
	var zero H
	return zero, false
}

// How says how Drop runs its remove function.
type How int

const (
	// Locked runs remove with the mutex held, after forgetting the
	// handle: nobody can open the tenant (or, with the backend's own steps
	// under the mutex, provision it) until its storage is gone, and the
	// whole set waits meanwhile. For quick, local removal (files).
	Locked How = iota
	// Unlocked marks the handle dropping and runs remove without the
	// mutex, then forgets the handle: new users of the tenant are refused
	// meanwhile and other tenants are served. For slow removal (a DROP
	// DATABASE on a server).
	Unlocked
)

// DropError is the error of a drop that was tried and failed: cancelled
// while the handle's users were finishing (the handle is usable again), or
// failed in remove. The backend wraps it with its own context.
type DropError struct{ Err error }

func (e *DropError) Error() string { return e.Err.Error() }
func (e *DropError) Unwrap() error { return e.Err }

// Drop drops tenant id. It first waits for a handle of id evicted a moment
// ago to finish closing (closing it may still touch the tenant's storage),
// then, if id has an open handle with users, refuses new users and waits
// until they are gone. Then it calls remove with the handle (open false if
// id had none open), which closes the handle and removes the tenant's
// storage, with or without the mutex as how says.
//
// Drop returns Config.Closed once the set is closed, ctx's error (as is) if
// ctx ends while an evicted handle is closing, and a *DropError if ctx ends
// while users finish (the handle then takes users again) or remove fails.
func (s *Set[H]) Drop(ctx context.Context, id tenant.ID, how How, remove func(h H, open bool) error) error {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return s.cfg.Closed
		}
		if c, ok := s.closingLocked(id); ok {
			s.mu.Unlock()
			if err := wait(ctx, s.cfg.Ref(c).closed); err != nil {
				return err
			}
			continue
		}
		h, ok := s.open[id]
		if ok && s.cfg.Ref(h).refs > 0 {
			r := s.cfg.Ref(h)
			*s.cfg.Dropping(h) = true
			if r.drained == nil {
				r.drained = make(chan struct{})
			}
			drained := r.drained
			s.mu.Unlock()
			if err := wait(ctx, drained); err != nil {
				s.mu.Lock()
				*s.cfg.Dropping(h) = false
				if r.refs == 0 && r.elem == nil && s.open[id] == h {
					r.elem = s.idle.PushFront(h) // Release skipped it while dropping
				}
				s.mu.Unlock()
				return &DropError{err}
			}
			continue
		}
		var err error
		switch how {
		case Locked:
			func() {
				defer s.mu.Unlock()
				if ok {
					s.forget(h)
				}
				err = remove(h, ok)
			}()
		default:
			if ok {
				*s.cfg.Dropping(h) = true // refuse new users until the storage is gone
			}
			s.mu.Unlock()
			err = remove(h, ok)
			if ok {
				s.mu.Lock()
				s.forget(h)
				s.mu.Unlock()
			}
		}
		if err != nil {
			return &DropError{err}
		}
		return nil
	}
}

func wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close marks the set closed and forgets every open handle, and returns a
// function that waits for the evicted handles still closing and then closes
// the handles that were open, joining their errors; it returns nil if the
// set was closed already. The two steps are apart so that a backend can
// bound the wait (PostgreSQL's pools wait for connections in use). Users
// in flight should be finished first: their handles are closed anyway.
func (s *Set[H]) Close() (finish func() error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	hs := make([]H, 0, len(s.open))
	for _, h := range s.open {
		hs = append(hs, h)
		s.forget(h)
	}
	s.mu.Unlock()
	return func() error {
		s.wg.Wait() // evicted handles still closing
		var errs []error
		for _, h := range hs {
			errs = append(errs, s.cfg.Close(h))
		}
		return errors.Join(errs...)
	}
}

// Closed reports whether Close was called.
func (s *Set[H]) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// ClosedLocked is Closed for a caller holding the mutex.
func (s *Set[H]) ClosedLocked() bool { return s.closed }

// Dropping reports whether tenant id's handle is open and being dropped.
func (s *Set[H]) Dropping(id tenant.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.DroppingLocked(id)
}

// DroppingLocked is Dropping for a caller holding the mutex.
func (s *Set[H]) DroppingLocked(id tenant.ID) bool {
	h, ok := s.open[id]
	return ok && *s.cfg.Dropping(h)
}

// Len returns how many handles are open. It is at most Config.Max, except
// while more tenants than that have users.
func (s *Set[H]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}
