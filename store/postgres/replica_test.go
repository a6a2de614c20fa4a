package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
)

var (
	modes       = []store.Mode{store.Pooled, store.Schema, store.Database}
	replicaRead = store.TxOptions{ReadOnly: true, Replica: true}
)

// replicaEnv is a shard with a replica and a router over it.
type replicaEnv struct {
	pg  pgtest.Env
	rep *pgtest.Replica
	b   *Backend
	e   *storetest.Env
}

// newReplicaEnv opens a shard on a fresh database with the replica at
// ro.URL (the test replica's if empty), hosting mode.
func newReplicaEnv(t *testing.T, mode store.Mode, exclusive bool, ro ReplicaOptions) *replicaEnv {
	t.Helper()
	pg := pgtest.New(t)
	rep := pgtest.NewReplica(t, pg, exclusive)
	if ro.URL == "" {
		ro.URL = rep.ServeURL
	}
	if ro.Logger == nil {
		ro.Logger = slog.New(slog.DiscardHandler)
	}
	b := open(t, pg, Options{Replica: ro})
	return &replicaEnv{pg: pg, rep: rep, b: b, e: storetest.NewEnv(t, b, mode)}
}

// put writes data to notes/n1 and returns the commit token.
func (r *replicaEnv) put(t *testing.T, ctx context.Context, data string) string {
	t.Helper()
	tx, err := r.e.Router.Begin(ctx, store.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, _, err := tx.Put(ctx, "notes", "n1", []byte(data), store.IfMatch{}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tok := tx.CommitToken()
	if tok == "" {
		t.Fatal("no commit token from a shard with a replica")
	}
	return tok
}

// get reads notes/n1 in a read that opted in to the replica.
func (r *replicaEnv) get(ctx context.Context) (string, error) {
	var data string
	err := r.e.Router.Run(ctx, replicaRead, func(tx *store.Tx) error {
		rec, err := tx.Get(ctx, "notes", "n1")
		data = string(rec.Data)
		return err
	})
	return data, err
}

func (r *replicaEnv) mustGet(t *testing.T, ctx context.Context) string {
	t.Helper()
	data, err := r.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// catchUp waits until the replica has replayed everything the primary had
// written and the backend has seen it usable since (a minute at most).
func (r *replicaEnv) catchUp(t testing.TB) {
	t.Helper()
	r.rep.CatchUp(t)
	waitUsable(t, r.b)
}

// waitUsable waits for a poll of b's replica that begins now and finds it
// usable (a minute at most).
func waitUsable(t testing.TB, b *Backend) {
	t.Helper()
	t0 := time.Now()
	deadline := t0.Add(time.Minute)
	for {
		b.replica.state.Lock()
		usable, sampled := b.replica.usable, b.replica.sampled
		b.replica.state.Unlock()
		if usable && sampled.After(t0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the backend did not see the replica usable within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// counts lists every replica-read counter of the shard, for failure messages.
func (r *replicaEnv) counts() string {
	var b strings.Builder
	for _, c := range [][2]string{{"replica", ReasonFresh}, {"primary", ReasonTokenAhead}, {"primary", ReasonLagging},
		{"primary", ReasonUnreachable}, {"primary", ReasonError}, {"primary", ReasonNewTenant}} {
		fmt.Fprintf(&b, "%s/%s=%v ", c[0], c[1], r.reads(c[0], c[1]))
	}
	return b.String()
}

// reads returns the replica-read counter of the shard.
func (r *replicaEnv) reads(servedBy, reason string) float64 {
	return r.b.ReplicaMetrics().Reads(storetest.Shard, servedBy, reason)
}

func TestReplicaServesOptedInReads(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			r := newReplicaEnv(t, mode, false, ReplicaOptions{MaxLag: time.Hour})
			ctx := r.e.Tenant(t, "acme")
			tok := r.put(t, ctx, `{"v":1}`)
			r.catchUp(t)
			if got := r.mustGet(t, store.WithReadAfter(ctx, tok)); got != `{"v":1}` {
				t.Fatalf("read %s", got)
			}
			err := r.e.Router.Run(ctx, replicaRead, func(tx *store.Tx) error {
				page, err := tx.List(ctx, "notes", store.ListOptions{})
				if err == nil && len(page.Items) != 1 {
					t.Errorf("list: %d records, want 1", len(page.Items))
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			err = r.e.Router.Run(ctx, replicaRead, func(tx *store.Tx) error {
				cs, err := tx.Collections(ctx)
				if err == nil && (len(cs) != 1 || cs[0].Records != 1) {
					t.Errorf("collections: %+v", cs)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if n := r.reads("replica", ReasonFresh); n != 3 {
				t.Fatalf("%v reads served by the replica, want 3 (primary: token_ahead %v, error %v, unreachable %v)", n,
					r.reads("primary", ReasonTokenAhead), r.reads("primary", ReasonError), r.reads("primary", ReasonUnreachable))
			}
			if err := r.e.Router.ReadTx(ctx, func(*store.Tx) error { return nil }); err != nil {
				t.Fatal(err)
			}
			if n := r.reads("replica", ReasonFresh); n != 3 {
				t.Fatalf("a read that did not opt in was counted: %v", n)
			}
		})
	}
}

// While the replica has not replayed a commit, a read presenting its
// token is served by the primary, with the new data; a read without one
// may be served by the replica, stale.
func TestReadAfterTokenIsNeverServedByAReplicaBehindIt(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			r := newReplicaEnv(t, mode, true, ReplicaOptions{MaxLag: time.Hour})
			ctx := r.e.Tenant(t, "acme")
			r.put(t, ctx, `{"v":1}`)
			r.catchUp(t)
			r.rep.Pause(t)
			tok := r.put(t, ctx, `{"v":2}`)

			if got := r.mustGet(t, store.WithReadAfter(ctx, tok)); got != `{"v":2}` {
				t.Fatalf("read with the token: %s, want the new version", got)
			}
			if n := r.reads("primary", ReasonTokenAhead); n != 1 {
				t.Fatalf("primary/token_ahead = %v, want 1", n)
			}
			if got := r.mustGet(t, ctx); got != `{"v":1}` {
				t.Fatalf("read without a token: %s, want the replica's stale version", got)
			}
			if n := r.reads("replica", ReasonFresh); n != 1 {
				t.Fatalf("replica/fresh = %v, want 1", n)
			}

			r.rep.Resume(t)
			deadline := time.Now().Add(time.Minute)
			for r.reads("replica", ReasonFresh) < 2 {
				if got := r.mustGet(t, store.WithReadAfter(ctx, tok)); got != `{"v":2}` {
					t.Fatalf("read with the token: %s, want the new version", got)
				}
				if time.Now().After(deadline) {
					t.Fatal("the replica did not serve the token's read within a minute of resuming")
				}
			}
		})
	}
}

func TestLaggingReplicaFallsBackToThePrimary(t *testing.T) {
	r := newReplicaEnv(t, store.Pooled, true, ReplicaOptions{MaxLag: 200 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	ctx := r.e.Tenant(t, "acme")
	r.put(t, ctx, `{"v":1}`)
	r.catchUp(t)
	r.rep.Pause(t)
	r.put(t, ctx, `{"v":2}`)
	deadline := time.Now().Add(time.Minute)
	for {
		lag, usable, ok := r.b.ReplicaLag()
		if !ok || !usable {
			t.Fatalf("ReplicaLag: usable %v, ok %v", usable, ok)
		}
		if lag > 200*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the paused replica's lag stayed at %v", lag)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.mustGet(t, ctx); got != `{"v":2}` {
		t.Fatalf("read %s from a lagging replica", got)
	}
	if n := r.reads("primary", ReasonLagging); n != 1 {
		t.Fatalf("primary/lagging = %v, want 1", n)
	}
}

// A tenant database the replica has not replayed yet: the read runs on
// the primary, counted as an error.
func TestReplicaWithoutTheTenantDatabaseFallsBackToThePrimary(t *testing.T) {
	r := newReplicaEnv(t, store.Database, true, ReplicaOptions{MaxLag: time.Hour})
	r.rep.Pause(t)
	ctx := r.e.Tenant(t, "newco")
	tok := r.put(t, ctx, `{"v":1}`)
	if got := r.mustGet(t, ctx); got != `{"v":1}` {
		t.Fatalf("read %s", got)
	}
	if n := r.reads("primary", ReasonError); n != 1 {
		t.Fatalf("primary/error = %v, want 1 (replica/fresh %v)", n, r.reads("replica", ReasonFresh))
	}
	if got := r.mustGet(t, store.WithReadAfter(ctx, tok)); got != `{"v":1}` {
		t.Fatalf("read %s", got)
	}
}

func TestUnreachableReplicaFallsBackToThePrimary(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	pg := pgtest.New(t)
	u, _ := url.Parse(pg.ServeURL)
	u.Host = addr
	u.RawQuery = "sslmode=disable&connect_timeout=2"
	r := &replicaEnv{pg: pg}
	r.b = open(t, pg, Options{Replica: ReplicaOptions{URL: u.String()}})
	r.e = storetest.NewEnv(t, r.b, store.Pooled)
	ctx := r.e.Tenant(t, "acme")
	tok := r.put(t, ctx, `{"v":1}`)
	for _, c := range []context.Context{ctx, store.WithReadAfter(ctx, tok)} {
		if got := r.mustGet(t, c); got != `{"v":1}` {
			t.Fatalf("read %s", got)
		}
	}
	if n := r.reads("primary", ReasonUnreachable); n != 2 {
		t.Fatalf("primary/unreachable = %v, want 2", n)
	}
	if _, usable, _ := r.b.ReplicaLag(); usable {
		t.Fatal("a closed port is usable")
	}
}

// A replica URL that logs in as another role than the serving role (here
// the superuser, which bypasses row-level security) is never used.
func TestReplicaLoggingInAsAnotherRoleIsNotUsed(t *testing.T) {
	pg := pgtest.New(t)
	rep := pgtest.NewReplica(t, pg, false)
	u, _ := url.Parse(rep.SuperURL)
	u.Path = "/" + pg.DB
	r := &replicaEnv{pg: pg, rep: rep}
	r.b = open(t, pg, Options{Replica: ReplicaOptions{URL: u.String()}})
	r.e = storetest.NewEnv(t, r.b, store.Pooled)
	acme, globex := r.e.Tenant(t, "acme"), r.e.Tenant(t, "globex")
	r.put(t, acme, `{"owner":"acme"}`)
	rep.CatchUp(t)
	if _, err := r.get(globex); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("globex read: %v", err)
	}
	if n := r.reads("replica", ReasonFresh); n != 0 {
		t.Fatalf("the superuser's replica served %v reads", n)
	}
	if n := r.reads("primary", ReasonUnreachable); n != 1 {
		t.Fatalf("primary/unreachable = %v, want 1", n)
	}
}

func TestReadAfterTokensOfOtherTenantsAreRefused(t *testing.T) {
	r := newReplicaEnv(t, store.Pooled, false, ReplicaOptions{})
	acme, globex := r.e.Tenant(t, "acme"), r.e.Tenant(t, "globex")
	tok := r.put(t, acme, `{"v":1}`)
	for name, c := range map[string]struct {
		ctx context.Context
		tok string
	}{
		"another tenant's token": {globex, tok},
		"a forged position":      {acme, "AQAAAAAAAAAABGFjbWUEbWFpbg." + strings.SplitN(tok, ".", 2)[1]},
		"a truncated token":      {acme, tok[:len(tok)-1]},
	} {
		if _, err := r.get(store.WithReadAfter(c.ctx, c.tok)); !errors.Is(err, store.ErrInvalidReadAfter) {
			t.Errorf("%s: err = %v, want ErrInvalidReadAfter", name, err)
		}
	}
}
