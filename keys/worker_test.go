package keys_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/keys"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// placements puts every tenant in pooled mode on shard "local".
type placements map[string]bool

func (p placements) Placement(_ context.Context, id tenant.ID) (store.Placement, error) {
	if !p[id.String()] {
		return store.Placement{}, store.ErrUnknownTenant
	}
	return store.Placement{Mode: store.Pooled, Shard: "local"}, nil
}

// clock is a settable clock for the Manager's cache and the jobs.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

type workerEnv struct {
	f      *fixture
	m      *keys.Manager
	be     store.Backend
	router *store.Router
	w      *keys.Worker
	clk    *clock
	places placements
}

func newWorkerEnv(t *testing.T, batch int) *workerEnv {
	t.Helper()
	f := newFixture(t)
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	m, err := keys.New(keys.Config{KMS: f.ring, KEKURI: f.ring.URI(), Store: f.store, TTL: time.Minute, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	be, err := sqlite.Open(t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	places := placements{}
	r, err := store.NewRouter(store.Config{Placements: places, Backends: map[string]store.Backend{"local": be}, Sealer: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	e := &workerEnv{f: f, m: m, be: be, router: r, clk: clk, places: places}
	e.w = keys.NewWorker(keys.WorkerConfig{Keys: m, Store: f.store, Router: r, Batch: batch,
		Tenants: func(ctx context.Context, after string, limit int) ([]tenant.ID, error) {
			var ids []tenant.ID
			for _, n := range []string{"acme", "globex", "initech"} {
				if n > after && places[n] && len(ids) < limit {
					ids = append(ids, tenant.MustParse(n))
				}
			}
			return ids, nil
		}})
	return e
}

func (e *workerEnv) tenant(t *testing.T, name string, records int) context.Context {
	t.Helper()
	id := tenant.MustParse(name)
	if err := e.router.Provision(context.Background(), id, store.Placement{Mode: store.Pooled, Shard: "local"}); err != nil {
		t.Fatal(err)
	}
	e.places[name] = true
	ctx := tenant.WithID(context.Background(), id)
	for i := range records {
		if err := e.router.Tx(ctx, func(tx *store.Tx) error {
			_, _, err := tx.Put(ctx, []string{"a", "b"}[i%2], fmt.Sprintf("r%03d", i), []byte(fmt.Sprintf(`{"i":%d}`, i)), store.IfMatch{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	return ctx
}

// raw returns the stored data of every record of the tenant, by id.
func (e *workerEnv) raw(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	id, _ := tenant.FromContext(ctx)
	btx, err := e.be.Begin(ctx, id, store.Pooled, false)
	if err != nil {
		t.Fatal(err)
	}
	defer btx.Rollback()
	out := map[string]string{}
	for _, c := range []string{"a", "b"} {
		recs, err := btx.List(ctx, store.Query{Collection: c, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			out[c+"/"+r.ID] = string(r.Data)
		}
	}
	return out
}

func (e *workerEnv) runUntilDone(t *testing.T, id string) keys.Job {
	t.Helper()
	for range 1000 {
		if _, err := e.w.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
		j, err := e.w.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != keys.JobRunning {
			return j
		}
		e.clk.t = e.clk.t.Add(5 * time.Second)
	}
	t.Fatal("job did not end")
	return keys.Job{}
}

func TestRotationJobResealsTakesTurnsAndRetires(t *testing.T) {
	e := newWorkerEnv(t, 7)
	acme := e.tenant(t, "acme", 40)
	globex := e.tenant(t, "globex", 40)
	before, beforeB := e.raw(t, acme), e.raw(t, globex)
	ja, err := e.w.StartRotation(context.Background(), tenant.MustParse("acme"))
	if err != nil {
		t.Fatal(err)
	}
	small := e.tenant(t, "initech", 3)
	_ = small
	jc, err := e.w.StartRotation(context.Background(), tenant.MustParse("initech"))
	if err != nil {
		t.Fatal(err)
	}
	// Tenants take turns: the small tenant's job ends within a few rounds
	// although the big one's started first.
	for range 4 {
		if _, err := e.w.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	e.clk.t = e.clk.t.Add(2 * time.Minute) // past the cache TTL: pass 2 may run
	for range 4 {
		_, _ = e.w.Round(context.Background())
	}
	if j, _ := e.w.Job(context.Background(), jc.ID); j.State != keys.JobDone {
		t.Fatalf("small tenant's rotation after 8 rounds: %+v", j)
	}
	if j, _ := e.w.Job(context.Background(), ja.ID); j.State != keys.JobRunning {
		t.Fatalf("big tenant's rotation ended in 8 rounds of 7 records: %+v", j)
	}
	j := e.runUntilDone(t, ja.ID)
	if j.State != keys.JobDone || j.Resealed != 40 || len(j.Destroyed) != 2 {
		t.Fatalf("rotation job: %+v", j)
	}
	after := e.raw(t, acme)
	for k, v := range before {
		if after[k] == v {
			t.Fatalf("%s was not re-sealed", k)
		}
	}
	// Every record reads back; another tenant's envelopes are untouched.
	for i := range 40 {
		if err := e.router.ReadTx(acme, func(tx *store.Tx) error {
			rec, err := tx.Get(acme, []string{"a", "b"}[i%2], fmt.Sprintf("r%03d", i))
			if err == nil && string(rec.Data) != fmt.Sprintf(`{"i":%d}`, i) || err == nil && rec.Version != 1 {
				err = fmt.Errorf("record %d: %s v%d", i, rec.Data, rec.Version)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.raw(t, globex); fmt.Sprint(got) != fmt.Sprint(beforeB) {
		t.Fatal("another tenant's records changed during a rotation")
	}
}

func TestSealJobEncryptsRecordsStoredInTheClear(t *testing.T) {
	e := newWorkerEnv(t, 5)
	acme := e.tenant(t, "acme", 0)
	_ = e.tenant(t, "globex", 0)
	// Records written before encryption: straight into the backend.
	id, _ := tenant.FromContext(acme)
	btx, err := e.be.Begin(acme, id, store.Pooled, true)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 12 {
		if err := btx.Insert(acme, store.Record{ID: fmt.Sprintf("r%03d", i), Collection: "a", Data: []byte(`{"plain":"visible"}`),
			Version: 3, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	if err := btx.Commit(); err != nil {
		t.Fatal(err)
	}
	j, err := e.w.StartSeal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := e.w.StartSeal(context.Background()); again.ID != j.ID {
		t.Fatal("a second seal job started while one runs")
	}
	if need, err := e.w.SealNeeded(context.Background()); err != nil || !need {
		t.Fatalf("before any seal job finished: SealNeeded %v %v, want true", need, err)
	}
	j = e.runUntilDone(t, j.ID)
	if j.State != keys.JobDone || j.Resealed != 12 {
		t.Fatalf("seal job: %+v", j)
	}
	// Once it is done, a restart need not read every record again, until
	// a server runs with encryption off.
	if need, err := e.w.SealNeeded(context.Background()); err != nil || need {
		t.Fatalf("after the seal job: SealNeeded %v %v, want false", need, err)
	}
	if err := e.f.store.SetMark(context.Background(), keys.MarkPlaintext, e.clk.t); err != nil {
		t.Fatal(err)
	}
	if need, err := e.w.SealNeeded(context.Background()); err != nil || !need {
		t.Fatalf("after a start with encryption off: SealNeeded %v %v, want true", need, err)
	}
	for k, v := range e.raw(t, acme) {
		if strings.Contains(v, "visible") {
			t.Fatalf("%s still in the clear: %s", k, v)
		}
	}
	if err := e.router.ReadTx(acme, func(tx *store.Tx) error {
		rec, err := tx.Get(acme, "a", "r007")
		if err == nil && (string(rec.Data) != `{"plain":"visible"}` || rec.Version != 3) {
			err = fmt.Errorf("resealed record reads %s v%d", rec.Data, rec.Version)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestJobsResumeAfterARestart: a job's progress is saved after every
// batch, so a worker made anew (a restarted server) finishes it.
func TestJobsResumeAfterARestart(t *testing.T) {
	e := newWorkerEnv(t, 4)
	_ = e.tenant(t, "acme", 30)
	j, err := e.w.StartRotation(context.Background(), tenant.MustParse("acme"))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := e.w.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	mid, _ := e.w.Job(context.Background(), j.ID)
	if mid.Resealed == 0 || mid.State != keys.JobRunning {
		t.Fatalf("after 3 rounds: %+v", mid)
	}
	e.w = keys.NewWorker(keys.WorkerConfig{Keys: e.m, Store: e.f.store, Router: e.router, Batch: 4})
	if got := e.runUntilDone(t, j.ID); got.State != keys.JobDone || got.Resealed != 30 {
		t.Fatalf("resumed job: %+v", got)
	}
}

// TestARotationDoesNotReachATenantCreatedAgain: a tenant deleted during
// its rotation and created again with the same id has new keys; the old
// rotation stops instead of re-sealing the new tenant's records or
// retiring its keys.
func TestARotationDoesNotReachATenantCreatedAgain(t *testing.T) {
	e := newWorkerEnv(t, 4)
	acme := e.tenant(t, "acme", 20)
	j, err := e.w.StartRotation(context.Background(), tenant.MustParse("acme"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.w.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Deleted (keys shredded, data dropped) and created again.
	id := tenant.MustParse("acme")
	if _, err := e.m.Destroy(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := e.router.Drop(context.Background(), id, store.Placement{Mode: store.Pooled, Shard: "local"}); err != nil {
		t.Fatal(err)
	}
	delete(e.places, "acme")
	acme = e.tenant(t, "acme", 6)
	fresh, err := e.m.Info(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	got := e.runUntilDone(t, j.ID)
	if got.State != keys.JobFailed || len(got.Destroyed) != 0 {
		t.Fatalf("the old rotation on the new tenant: %+v", got)
	}
	if now, _ := e.m.Info(context.Background(), id); fmt.Sprint(now) != fmt.Sprint(fresh) {
		t.Fatalf("the new tenant's keys changed from %v to %v", fresh, now)
	}
	if err := e.router.ReadTx(acme, func(tx *store.Tx) error {
		_, err := tx.Get(acme, "a", "r000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestTwoWorkersStepAJobOneAtATime: two instances' workers on one key
// store; the one that claimed a job steps it, the other leaves it alone
// until the first one's lease runs out (it stopped), then carries on from
// the progress the first one saved, and the job ends with every record
// re-sealed once.
func TestTwoWorkersStepAJobOneAtATime(t *testing.T) {
	e, j, other := twoWorkers(t)
	round := func(w *keys.Worker) (bool, keys.Job) {
		t.Helper()
		busy, err := w.Round(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.w.Job(context.Background(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		return busy, got
	}
	for range 3 { // lists the collections, then two batches
		round(e.w)
	}
	_, before := round(e.w)
	if before.Resealed == 0 {
		t.Fatalf("the first worker made no progress: %+v", before)
	}
	for range 3 {
		if busy, got := round(other); busy || got.Resealed != before.Resealed || got.After != before.After {
			t.Fatalf("the second worker stepped a job the first one holds: busy %v, %+v", busy, got)
		}
	}
	// The first worker stops; once its lease has run out the second one
	// takes the job over from where it was.
	e.clk.t = e.clk.t.Add(keys.JobLease + time.Second)
	busy, got := round(other)
	if !busy || got.Resealed <= before.Resealed {
		t.Fatalf("the second worker did not take over after the lease ran out: busy %v, %+v", busy, got)
	}
	// The first one, back, leaves it to the second (whose lease is fresh).
	if busy, again := round(e.w); busy || again.Resealed != got.Resealed {
		t.Fatalf("the first worker stepped a job the second one holds now: %+v", again)
	}
	for range 1000 {
		if got.State != keys.JobRunning {
			break
		}
		e.clk.t = e.clk.t.Add(5 * time.Second)
		_, got = round(other)
	}
	if got.State != keys.JobDone || got.Resealed != 30 {
		t.Fatalf("the job ended %+v, want done with 30 records re-sealed once", got)
	}
}

// TestAWorkerThatStopsHandsItsJobsOver: a worker that releases its
// leases (as Run does when it stops) lets another take its jobs over at
// once, without waiting for the leases to run out.
func TestAWorkerThatStopsHandsItsJobsOver(t *testing.T) {
	e, j, other := twoWorkers(t)
	for range 3 {
		if _, err := e.w.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if busy, err := other.Round(context.Background()); err != nil || busy {
		t.Fatalf("the second worker stepped a job the first one holds: %v %v", busy, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.w.Run(ctx, time.Hour) // stops at once, releasing its leases
	before, _ := e.w.Job(context.Background(), j.ID)
	if busy, err := other.Round(context.Background()); err != nil || !busy {
		t.Fatalf("the second worker did not take the job over once released: %v %v", busy, err)
	}
	if after, _ := e.w.Job(context.Background(), j.ID); after.Resealed <= before.Resealed {
		t.Fatalf("no progress after the takeover: %+v", after)
	}
}

// twoWorkers is a rotation of a tenant of 30 records, started on e.w, and
// a second worker on the same key store (another instance's).
func twoWorkers(t *testing.T) (*workerEnv, keys.Job, *keys.Worker) {
	t.Helper()
	e := newWorkerEnv(t, 4)
	_ = e.tenant(t, "acme", 30)
	j, err := e.w.StartRotation(context.Background(), tenant.MustParse("acme"))
	if err != nil {
		t.Fatal(err)
	}
	return e, j, keys.NewWorker(keys.WorkerConfig{Keys: e.m, Store: e.f.store, Router: e.router, Batch: 4})
}
