package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// replicaShard wraps a real SQLite backend with the two replica
// capabilities, to check what the Router does with them: its transactions
// report a growing commit position, and BeginReplica records the position
// each replica read asked for (the PostgreSQL tests run the real thing).
type replicaShard struct {
	store.Backend
	pos atomic.Uint64

	mu    sync.Mutex
	reads []store.ReplicaRead // guarded by mu
}

func (s *replicaShard) Begin(ctx context.Context, id tenant.ID, mode store.Mode, write bool) (store.BackendTx, error) {
	btx, err := s.Backend.Begin(ctx, id, mode, write)
	if err != nil {
		return nil, err
	}
	return &positionTx{BackendTx: btx, s: s}, nil
}

func (s *replicaShard) BeginReplica(ctx context.Context, id tenant.ID, mode store.Mode, read store.ReplicaRead) (store.BackendTx, error) {
	s.mu.Lock()
	s.reads = append(s.reads, read)
	s.mu.Unlock()
	return s.Backend.Begin(ctx, id, mode, false)
}

func (s *replicaShard) replicaReads() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var after []uint64
	for _, r := range s.reads {
		after = append(after, r.After)
	}
	return after
}

func (s *replicaShard) lastRead() store.ReplicaRead {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[len(s.reads)-1]
}

type positionTx struct {
	store.BackendTx
	s   *replicaShard
	pos uint64
}

func (t *positionTx) Commit() error {
	err := t.BackendTx.Commit()
	if err == nil {
		t.pos = t.s.pos.Add(1000)
	}
	return err
}

func (t *positionTx) CommitPosition() (uint64, bool) { return t.pos, t.pos != 0 }

var (
	_ store.ReplicaBackend   = (*replicaShard)(nil)
	_ store.CommitPositioner = (*positionTx)(nil)
)

type replicaWorld struct {
	r      *store.Router
	shards map[string]*replicaShard
	place  map[tenant.ID]store.Placement // guarded by mu
	mu     sync.Mutex
}

// newReplicaWorld returns a router with shards "a" and "b" (SQLite, with
// the fake replica capabilities) and tenants acme and globex on "a".
func newReplicaWorld(t *testing.T, key []byte) *replicaWorld {
	t.Helper()
	w := &replicaWorld{shards: map[string]*replicaShard{}, place: map[tenant.ID]store.Placement{}}
	backends := map[string]store.Backend{}
	for _, name := range []string{"a", "b"} {
		b, err := sqlite.Open(t.TempDir(), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		w.shards[name] = &replicaShard{Backend: b}
		backends[name] = w.shards[name]
	}
	r, err := store.NewRouter(store.Config{
		Placements: placementFunc(func(_ context.Context, id tenant.ID) (store.Placement, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			p, ok := w.place[id]
			if !ok {
				return store.Placement{}, store.ErrUnknownTenant
			}
			return p, nil
		}),
		Backends:  backends,
		CursorKey: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	w.r = r
	for _, id := range []string{"acme", "globex"} {
		w.move(t, tenant.MustParse(id), "a")
	}
	return w
}

// move places id on shard (provisioning it there).
func (w *replicaWorld) move(t *testing.T, id tenant.ID, shard string) {
	t.Helper()
	p := store.Placement{Mode: store.Database, Shard: shard}
	if err := w.r.Provision(context.Background(), id, p); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.place[id] = p
	w.mu.Unlock()
}

// put writes a record for the tenant in ctx and returns the commit token.
func (w *replicaWorld) put(t *testing.T, ctx context.Context) string {
	t.Helper()
	tx, err := w.r.Begin(ctx, store.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, _, err := tx.Put(ctx, "notes", "n1", json.RawMessage(`{"a":1}`), store.IfMatch{}); err != nil {
		t.Fatal(err)
	}
	if tok := tx.CommitToken(); tok != "" {
		t.Fatalf("a token before Commit: %q", tok)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return tx.CommitToken()
}

var (
	replicaRead = store.TxOptions{ReadOnly: true, Replica: true}
	testKey     = []byte(strings.Repeat("r", 32))
)

func TestReadAfterTokenReachesTheReplicaRead(t *testing.T) {
	w := newReplicaWorld(t, testKey)
	ctx := tenant.WithID(context.Background(), tenant.MustParse("acme"))
	tok := w.put(t, ctx)
	if tok == "" {
		t.Fatal("no commit token from a shard with a replica")
	}
	if err := w.r.Run(store.WithReadAfter(ctx, tok), replicaRead, func(tx *store.Tx) error {
		_, err := tx.Get(ctx, "notes", "n1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.r.Run(ctx, replicaRead, func(*store.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	got := w.shards["a"].replicaReads()
	if len(got) != 2 || got[0] != 1000 || got[1] != 0 {
		t.Fatalf("replica reads asked for positions %v, want [1000 0]", got)
	}
	t.Run("a plain read-only transaction stays on the primary", func(t *testing.T) {
		if err := w.r.ReadTx(store.WithReadAfter(ctx, tok), func(*store.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if n := len(w.shards["a"].replicaReads()); n != 2 {
			t.Fatalf("%d replica reads, want 2", n)
		}
	})
	t.Run("a read-only transaction has no token", func(t *testing.T) {
		tx, err := w.r.Begin(ctx, replicaRead)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if tok := tx.CommitToken(); tok != "" {
			t.Fatalf("read-only token %q", tok)
		}
	})
}

func TestReadAfterTokenIsRefusedWhenNotThisTenantsOrShards(t *testing.T) {
	w := newReplicaWorld(t, testKey)
	acme, globex := tenant.MustParse("acme"), tenant.MustParse("globex")
	actx := tenant.WithID(context.Background(), acme)
	gctx := tenant.WithID(context.Background(), globex)
	tok := w.put(t, actx)
	other := newReplicaWorld(t, []byte(strings.Repeat("k", 32)))
	foreign := other.put(t, actx)

	p64, m64, _ := strings.Cut(tok, ".")
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	cases := []struct {
		name string
		ctx  context.Context
		tok  string
	}{
		{"another tenant's token", gctx, tok},
		{"a token made by another router", actx, foreign},
		{"a payload with one character changed", actx, flip(p64, 3) + "." + m64},
		{"a signature with one character changed", actx, p64 + "." + flip(m64, 5)},
		{"a token without its signature", actx, p64},
		{"a signature alone", actx, "." + m64},
		{"a token with a control character", actx, tok + "\x00"},
		{"a token with a newline", actx, "\n" + tok},
		{"a padded token", actx, p64 + "=." + m64},
		{"a very long token", actx, strings.Repeat("A", 10000) + "." + m64},
		{"a cursor-shaped token", actx, "eyJ2IjoxfQ." + m64},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			for _, opts := range []store.TxOptions{replicaRead, {ReadOnly: true}, {}} {
				tx, err := w.r.Begin(store.WithReadAfter(c.ctx, c.tok), opts)
				if err == nil {
					tx.Rollback()
				}
				if !errors.Is(err, store.ErrInvalidReadAfter) {
					t.Fatalf("%+v: err = %v, want ErrInvalidReadAfter", opts, err)
				}
				if strings.Contains(err.Error(), "acme") || strings.Contains(err.Error(), "globex") {
					t.Fatalf("the error names a tenant: %v", err)
				}
			}
		})
	}
	t.Run("the token of a tenant deleted and re-created only asks for freshness", func(t *testing.T) {
		// A tenant id's new incarnation on the same shard sees only its
		// own rows; a position asks for nothing else.
		if err := w.r.Drop(context.Background(), acme, store.Placement{Mode: store.Database, Shard: "a"}); err != nil {
			t.Fatal(err)
		}
		w.move(t, acme, "a")
		err := w.r.Run(store.WithReadAfter(actx, tok), replicaRead, func(tx *store.Tx) error {
			_, err := tx.Get(actx, "notes", "n1")
			return err
		})
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("a token from before the tenant moved to another shard is refused", func(t *testing.T) {
		w.move(t, acme, "b")
		_, err := w.r.Begin(store.WithReadAfter(actx, tok), replicaRead)
		if !errors.Is(err, store.ErrInvalidReadAfter) {
			t.Fatalf("err = %v, want ErrInvalidReadAfter", err)
		}
		if tok2 := w.put(t, actx); tok2 == tok || tok2 == "" {
			t.Fatalf("shard b's token %q", tok2)
		}
	})
}

func TestReplicaOptionsNeedAReadOnlyTransactionOfOwnReads(t *testing.T) {
	w := newReplicaWorld(t, testKey)
	ctx := tenant.WithID(context.Background(), tenant.MustParse("acme"))
	for _, opts := range []store.TxOptions{{Replica: true}, {Replica: true, ReadOnly: true, SQL: true}} {
		if _, err := w.r.Begin(ctx, opts); err == nil || !strings.Contains(err.Error(), "Replica") {
			t.Fatalf("%+v: err = %v, want the options refused", opts, err)
		}
	}
	if _, err := w.r.Begin(context.Background(), replicaRead); !errors.Is(err, tenant.ErrMissing) {
		t.Fatalf("no tenant: err = %v", err)
	}
}

func TestRouterWithoutKeyMakesAndTakesNoToken(t *testing.T) {
	w := newReplicaWorld(t, nil)
	ctx := tenant.WithID(context.Background(), tenant.MustParse("acme"))
	if tok := w.put(t, ctx); tok != "" {
		t.Fatalf("token %q from a router without a cursor key", tok)
	}
	keyed := newReplicaWorld(t, testKey)
	tok := keyed.put(t, ctx)
	if _, err := w.r.Begin(store.WithReadAfter(ctx, tok), replicaRead); !errors.Is(err, store.ErrInvalidReadAfter) {
		t.Fatalf("err = %v, want ErrInvalidReadAfter", err)
	}
}

func TestBackendWithoutReplicaServesReplicaReads(t *testing.T) {
	r, ctx := newKeylessRouter(t, testKey)
	var tok string
	tx, err := r.Begin(ctx, store.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tx.Put(ctx, "notes", "n1", json.RawMessage(`{"a":1}`), store.IfMatch{}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if tok = tx.CommitToken(); tok != "" {
		t.Fatalf("SQLite gave a token %q", tok)
	}
	err = r.Run(ctx, replicaRead, func(tx *store.Tx) error {
		_, err := tx.Get(ctx, "notes", "n1")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// incarnations is a store.Placements that says when each tenant began.
type incarnations struct {
	placementFunc
	start map[tenant.ID]time.Time
}

func (p incarnations) IncarnationStart(_ context.Context, id tenant.ID) (time.Time, error) {
	return p.start[id], nil
}

func TestReplicaReadsCarryTheTenantsAge(t *testing.T) {
	b, err := sqlite.Open(t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	shard := &replicaShard{Backend: b}
	p := store.Placement{Mode: store.Database, Shard: "a"}
	fixed := placementFunc(func(context.Context, tenant.ID) (store.Placement, error) { return p, nil })
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	acme, old := tenant.MustParse("acme"), tenant.MustParse("old")
	for _, c := range []struct {
		name   string
		places store.Placements
		id     tenant.ID
		age    time.Duration
	}{
		{"without IncarnationStarts the age is unknown", fixed, acme, -1},
		{"a tenant created a minute ago", incarnations{fixed, map[tenant.ID]time.Time{acme: now.Add(-time.Minute)}}, acme, time.Minute},
		{"a tenant from the future (clock skew) is new", incarnations{fixed, map[tenant.ID]time.Time{acme: now.Add(time.Minute)}}, acme, 0},
		{"a tenant without a start is as old as can be", incarnations{fixed, map[tenant.ID]time.Time{}}, old, 1<<63 - 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := store.NewRouter(store.Config{Placements: c.places, Backends: map[string]store.Backend{"a": shard},
				CursorKey: testKey, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			ctx := tenant.WithID(context.Background(), c.id)
			if err := r.Provision(context.Background(), c.id, p); err != nil {
				t.Fatal(err)
			}
			if err := r.Run(ctx, replicaRead, func(*store.Tx) error { return nil }); err != nil {
				t.Fatal(err)
			}
			if got := shard.lastRead().Age; got != c.age {
				t.Fatalf("Age = %v, want %v", got, c.age)
			}
		})
	}
}
