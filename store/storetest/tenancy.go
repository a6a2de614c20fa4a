package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func testNoTenant(t *testing.T, e *Env) {
	acme := e.Tenant(t, "acme")
	e.mustPut(t, acme, "c", "r", `{}`)
	ctx := context.Background()
	_, err := e.Router.Begin(ctx, store.TxOptions{})
	wantErr(t, "Begin without a tenant", err, tenant.ErrMissing)
	_, err = e.Router.Begin(ctx, store.TxOptions{ReadOnly: true})
	wantErr(t, "read-only Begin without a tenant", err, tenant.ErrMissing)
	called := false
	err = e.Router.Tx(ctx, func(*store.Tx) error { called = true; return nil })
	wantErr(t, "Tx without a tenant", err, tenant.ErrMissing)
	err = e.Router.ReadTx(ctx, func(*store.Tx) error { called = true; return nil })
	wantErr(t, "ReadTx without a tenant", err, tenant.ErrMissing)
	if called {
		t.Fatal("a transaction function ran without a tenant")
	}
	wantErr(t, "Provision of the zero tenant", e.Router.Provision(ctx, tenant.ID{}, store.Placement{Mode: e.Mode, Shard: Shard}), tenant.ErrMissing)
	wantErr(t, "Drop of the zero tenant", e.Router.Drop(ctx, tenant.ID{}, store.Placement{Mode: e.Mode, Shard: Shard}), tenant.ErrMissing)
	_, err = e.Backend.Begin(ctx, tenant.ID{}, e.Mode, false)
	wantErr(t, "backend Begin with the zero tenant", err, tenant.ErrMissing)
	if _, err := e.get(acme, "c", "r"); err != nil {
		t.Fatalf("tenant's record after refused calls: %v", err)
	}
}

func testUnknownTenant(t *testing.T, e *Env) {
	e.Tenant(t, "acme")
	ctx := tenant.WithID(context.Background(), tenant.MustParse("stranger"))
	_, err := e.Router.Begin(ctx, store.TxOptions{})
	wantErr(t, "Begin for a tenant without a placement", err, store.ErrUnknownTenant)
}

func testTenantMismatch(t *testing.T, e *Env) {
	a := e.Tenant(t, "tenant-a")
	b := e.Tenant(t, "tenant-b")
	e.mustPut(t, a, "c", "r", `{"owner":"a"}`)
	e.mustPut(t, b, "c", "r", `{"owner":"b"}`)
	tx, err := e.Router.Begin(a, store.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if tx.Tenant() != tenant.MustParse("tenant-a") {
		t.Fatalf("tx tenant %v", tx.Tenant())
	}
	_, err = tx.Get(b, "c", "r")
	wantErr(t, "Get with another tenant's ctx", err, store.ErrTenantMismatch)
	_, _, err = tx.Put(b, "c", "r", []byte(`{"owner":"x"}`), store.IfMatch{})
	wantErr(t, "Put with another tenant's ctx", err, store.ErrTenantMismatch)
	_, err = tx.Create(b, "c", []byte(`{}`))
	wantErr(t, "Create with another tenant's ctx", err, store.ErrTenantMismatch)
	wantErr(t, "Delete with another tenant's ctx", tx.Delete(b, "c", "r", store.IfMatch{}), store.ErrTenantMismatch)
	_, err = tx.List(b, "c", store.ListOptions{})
	wantErr(t, "List with another tenant's ctx", err, store.ErrTenantMismatch)
	_, err = tx.Collections(b)
	wantErr(t, "Collections with another tenant's ctx", err, store.ErrTenantMismatch)
	// Its own tenant (or a context without one) still works, on its own rows.
	rec, err := tx.Get(a, "c", "r")
	if err != nil || string(rec.Data) != `{"owner":"a"}` {
		t.Fatalf("Get with its own ctx: %s %v", rec.Data, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ctx  context.Context
		want string
	}{{a, `{"owner":"a"}`}, {b, `{"owner":"b"}`}} {
		rec, err := e.get(c.ctx, "c", "r")
		if err != nil || string(rec.Data) != c.want || rec.Version != 1 {
			t.Fatalf("after refused calls: %s v%d %v, want %s v1", rec.Data, rec.Version, err, c.want)
		}
	}
}

func testRollback(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	e.mustPut(t, ctx, "c", "keep", `{"v":1}`)
	boom := errors.New("boom")
	err := e.Router.Tx(ctx, func(tx *store.Tx) error {
		if _, _, err := tx.Put(ctx, "c", "new", []byte(`{}`), store.IfMatch{}); err != nil {
			return err
		}
		if _, _, err := tx.Put(ctx, "c", "keep", []byte(`{"v":2}`), store.IfMatch{}); err != nil {
			return err
		}
		if err := tx.Delete(ctx, "c", "keep", store.IfMatch{}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx returned %v, want the callback's error", err)
	}
	tx, err := e.Router.Begin(ctx, store.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Create(ctx, "d", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	checkRolledBack(t, e, ctx)
}

func checkRolledBack(t *testing.T, e *Env, ctx context.Context) {
	t.Helper()
	if _, err := e.get(ctx, "c", "new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rolled-back insert is visible: %v", err)
	}
	rec, err := e.get(ctx, "c", "keep")
	if err != nil || rec.Version != 1 || string(rec.Data) != `{"v":1}` {
		t.Fatalf("rolled-back update or delete is visible: %+v %v", rec, err)
	}
	var cs []store.Collection
	_ = e.Router.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		cs, err = tx.Collections(ctx)
		return err
	})
	if !slices.Equal(cs, []store.Collection{{Name: "c", Records: 1}}) {
		t.Fatalf("collections after rollback: %v", cs)
	}
}

func testPanicRollback(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	e.mustPut(t, ctx, "c", "keep", `{"v":1}`)
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("recovered %v, want the callback's panic", p)
			}
		}()
		_ = e.Router.Tx(ctx, func(tx *store.Tx) error {
			_, _, _ = tx.Put(ctx, "c", "new", []byte(`{}`), store.IfMatch{})
			_, _, _ = tx.Put(ctx, "c", "keep", []byte(`{"v":2}`), store.IfMatch{})
			panic("boom")
		})
	}()
	checkRolledBack(t, e, ctx)
	// The backend is still usable (nothing leaked the write lock).
	e.mustPut(t, ctx, "c", "after", `{}`)
}

func testSameIDs(t *testing.T, e *Env) {
	a := e.Tenant(t, "tenant-a")
	b := e.Tenant(t, "tenant-b")
	for i := 0; i < 3; i++ {
		e.mustPut(t, a, "c", "same", fmt.Sprintf(`{"owner":"a","i":%d}`, i))
	}
	rec, created, err := e.put(b, "c", "same", `{"owner":"b"}`, store.IfMatch{})
	if err != nil || !created || rec.Version != 1 {
		t.Fatalf("B's put of an id A uses: created=%v version=%d err=%v, want a new record at version 1", created, rec.Version, err)
	}
	_, _, err = e.put(b, "c", "same", `{"owner":"b"}`, store.IfMatch{Version: 3})
	wantErr(t, "B's put with A's version", err, store.ErrPrecondition)
	wantErr(t, "B's delete with A's version", e.del(b, "c", "same", store.IfMatch{Version: 3}), store.ErrPrecondition)
	if err := e.del(a, "c", "same", store.IfMatch{}); err != nil {
		t.Fatal(err)
	}
	got, err := e.get(b, "c", "same")
	if err != nil || string(got.Data) != `{"owner":"b"}` || got.Version != 1 {
		t.Fatalf("B's record after A deleted its own: %s v%d %v", got.Data, got.Version, err)
	}
	_, err = e.get(a, "c", "same")
	wantErr(t, "A's deleted record", err, store.ErrNotFound)
	wantErr(t, "A deletes again", e.del(a, "c", "same", store.IfMatch{}), store.ErrNotFound)
	if recs := e.listAll(t, a, "c", 10, nil); len(recs) != 0 {
		t.Fatalf("A lists %v", ids(recs))
	}
}

func testDropReprovision(t *testing.T, e *Env) {
	a := e.Tenant(t, "tenant-a")
	b := e.Tenant(t, "tenant-b")
	for i := 0; i < 5; i++ {
		e.mustPut(t, a, "c", fmt.Sprintf("r%d", i), `{"owner":"a"}`)
		e.mustPut(t, a, "d", fmt.Sprintf("r%d", i), `{"owner":"a"}`)
		e.mustPut(t, b, "c", fmt.Sprintf("r%d", i), `{"owner":"b"}`)
	}
	e.Offboard(t, "tenant-a")
	_, err := e.Router.Begin(a, store.TxOptions{ReadOnly: true})
	wantErr(t, "Begin for an offboarded tenant", err, store.ErrUnknownTenant)
	e.Offboard(t, "tenant-a") // idempotent
	e.Offboard(t, "never-seen")
	a = e.Tenant(t, "tenant-a")
	if recs := e.listAll(t, a, "c", 10, nil); len(recs) != 0 {
		t.Fatalf("re-provisioned tenant lists %v, want nothing", ids(recs))
	}
	_, err = e.get(a, "c", "r0")
	wantErr(t, "get in re-provisioned tenant", err, store.ErrNotFound)
	var cs []store.Collection
	if err := e.Router.ReadTx(a, func(tx *store.Tx) error {
		cs, err = tx.Collections(a)
		return err
	}); err != nil || len(cs) != 0 {
		t.Fatalf("re-provisioned tenant's collections: %v %v", cs, err)
	}
	rec, created, err := e.put(a, "c", "r0", `{"owner":"a2"}`, store.IfMatch{})
	if err != nil || !created || rec.Version != 1 {
		t.Fatalf("put in re-provisioned tenant: created=%v version=%d err=%v", created, rec.Version, err)
	}
	recs := e.listAll(t, b, "c", 2, nil)
	if len(recs) != 5 {
		t.Fatalf("other tenant after drop: %v", ids(recs))
	}
	for _, r := range recs {
		if string(r.Data) != `{"owner":"b"}` || r.Version != 1 {
			t.Fatalf("other tenant's record changed: %+v", r)
		}
	}
}

// testConcurrentWriters runs optimistic read-modify-write loops on one
// record from several goroutines: every write that succeeds must show in
// the final version and counter, so none was lost.
func testConcurrentWriters(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	noise := e.Tenant(t, "noise")
	e.mustPut(t, ctx, "c", "counter", `{"n":0}`)
	const workers, perWorker = 4, 8
	var (
		mu        sync.Mutex
		successes = 1 // the create
		conflicts int
		wg        sync.WaitGroup
		errs      = make(chan error, workers+1)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < perWorker; {
				cur, err := e.get(ctx, "c", "counter")
				if err != nil {
					errs <- err
					return
				}
				var v struct{ N int }
				if err := json.Unmarshal(cur.Data, &v); err != nil {
					errs <- err
					return
				}
				_, _, err = e.put(ctx, "c", "counter", fmt.Sprintf(`{"n":%d}`, v.N+1), store.IfMatch{Version: cur.Version})
				switch {
				case errors.Is(err, store.ErrPrecondition) || errors.Is(err, store.ErrConflict):
					mu.Lock()
					conflicts++
					mu.Unlock()
				case err != nil:
					errs <- err
					return
				default:
					done++
					mu.Lock()
					successes++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // another tenant writing at the same time
		defer wg.Done()
		for i := 0; i < perWorker; i++ {
			if _, _, err := e.put(noise, "c", "counter", `{"n":-1}`, store.IfMatch{}); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rec, err := e.get(ctx, "c", "counter")
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ N int }
	if err := json.Unmarshal(rec.Data, &v); err != nil {
		t.Fatal(err)
	}
	if rec.Version != int64(successes) || v.N != successes-1 {
		t.Fatalf("final version %d and counter %d after %d successful writes (%d conflicts): an update was lost",
			rec.Version, v.N, successes, conflicts)
	}
	t.Logf("%d successful writes, %d precondition conflicts", successes, conflicts)
}
