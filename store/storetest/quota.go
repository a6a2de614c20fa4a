package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Quotas is a concurrency-safe in-memory store.Quotas for the Router of an
// Env: tenants without an entry have no quotas.
type Quotas struct {
	mu sync.RWMutex
	m  map[tenant.ID][2]int64 // records, bytes; guarded by mu
}

var _ store.Quotas = (*Quotas)(nil)

// Set gives tenant id the record and byte quotas (0: none).
func (q *Quotas) Set(id tenant.ID, records, bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.m == nil {
		q.m = make(map[tenant.ID][2]int64)
	}
	q.m[id] = [2]int64{records, bytes}
}

// StorageQuota implements store.Quotas.
func (q *Quotas) StorageQuota(_ context.Context, id tenant.ID) (maxRecords, maxBytes int64, err error) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	l := q.m[id]
	return l[0], l[1], nil
}

func usageOf(t *testing.T, e *Env, ctx context.Context) store.Usage {
	t.Helper()
	var u store.Usage
	if err := e.Router.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		u, err = tx.Usage(ctx)
		return err
	}); err != nil {
		t.Fatalf("usage: %v", err)
	}
	return u
}

// testQuotaConcurrent races writers for the last slots of a record quota:
// exactly the quota's worth succeed, the rest get a QuotaError, and the
// stored records and the usage agree.
func testQuotaConcurrent(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	other := e.Tenant(t, "globex")
	id, _ := tenant.FromContext(ctx)
	const quota, writers = 5, 16
	// Two records exist before the quota is set: the usage row is counted
	// from them on first use.
	for i := range 2 {
		e.mustPut(t, ctx, "c", fmt.Sprintf("pre%d", i), `{"v":1}`)
	}
	e.Quotas.Set(id, quota, 0)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.Router.Tx(ctx, func(tx *store.Tx) error {
				if i%2 == 0 {
					_, err := tx.Create(ctx, "c", []byte(`{"v":2}`))
					return err
				}
				_, _, err := tx.Put(ctx, "c", fmt.Sprintf("w%02d", i), []byte(`{"v":3}`), store.IfMatch{})
				return err
			})
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		var qe *store.QuotaError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &qe) && errors.Is(err, store.ErrQuotaExceeded):
			if qe.Resource != "records" || qe.Limit != quota || qe.Usage.Records != quota {
				t.Errorf("quota error = %+v", qe)
			}
		default:
			t.Errorf("writer: %v", err)
		}
	}
	if ok != quota-2 {
		t.Fatalf("%d writers succeeded, want %d", ok, quota-2)
	}
	if n := countRecords(t, e, ctx); n != quota {
		t.Fatalf("%d records stored, quota %d", n, quota)
	}
	if u := usageOf(t, e, ctx); u.Records != quota {
		t.Fatalf("usage %+v, want %d records", u, quota)
	}
	// Replacing a record adds none; another tenant is not affected.
	e.mustPut(t, ctx, "c", "pre0", `{"v":4}`)
	e.mustPut(t, other, "c", "x", `{"v":1}`)
	if u := usageOf(t, e, other); u.Records != 1 {
		t.Fatalf("other tenant usage %+v", u)
	}
}

func countRecords(t *testing.T, e *Env, ctx context.Context) int64 {
	t.Helper()
	var n int64
	if err := e.Router.ReadTx(ctx, func(tx *store.Tx) error {
		cs, err := tx.Collections(ctx)
		for _, c := range cs {
			n += c.Records
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// testQuotaBytes checks byte accounting through inserts, growing and
// shrinking updates and deletes, and that a refused write stores nothing.
func testQuotaBytes(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	id, _ := tenant.FromContext(ctx)
	e.Quotas.Set(id, 0, 100)
	small := `{"s":"` + strings.Repeat("a", 30) + `"}` // 38 bytes
	e.mustPut(t, ctx, "c", "a", small)
	e.mustPut(t, ctx, "c", "b", small)
	if u := usageOf(t, e, ctx); u != (store.Usage{Records: 2, Bytes: 76}) {
		t.Fatalf("usage %+v", u)
	}
	err := e.Router.Tx(ctx, func(tx *store.Tx) error {
		_, _, err := tx.Put(ctx, "c", "c", []byte(small), store.IfMatch{})
		return err
	})
	var qe *store.QuotaError
	if !errors.As(err, &qe) || qe.Resource != "bytes" || qe.Limit != 100 || qe.Usage.Bytes != 76 || qe.Requested != 38 {
		t.Fatalf("over byte quota: %v", err)
	}
	if _, err := e.get(ctx, "c", "c"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused record was stored: %v", err)
	}
	// Growing an existing record past the quota is refused; shrinking is fine.
	big := `{"s":"` + strings.Repeat("b", 60) + `"}`
	if err := e.Router.Tx(ctx, func(tx *store.Tx) error {
		_, _, err := tx.Put(ctx, "c", "a", []byte(big), store.IfMatch{})
		return err
	}); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("growing past quota: %v", err)
	}
	e.mustPut(t, ctx, "c", "a", `{}`)
	if u := usageOf(t, e, ctx); u != (store.Usage{Records: 2, Bytes: 40}) {
		t.Fatalf("after shrink: %+v", u)
	}
	if err := e.Router.Tx(ctx, func(tx *store.Tx) error { return tx.Delete(ctx, "c", "b", store.IfMatch{}) }); err != nil {
		t.Fatal(err)
	}
	if u := usageOf(t, e, ctx); u != (store.Usage{Records: 1, Bytes: 2}) {
		t.Fatalf("after delete: %+v", u)
	}
	e.mustPut(t, ctx, "c", "c", big)
	// Dropping the tenant drops its usage.
	e.Offboard(t, "acme")
	ctx = e.Tenant(t, "acme")
	if u := usageOf(t, e, ctx); u != (store.Usage{}) {
		t.Fatalf("after drop: %+v", u)
	}
}

// testUsageAfterWrites: the usage a write transaction reports without a
// query is what a later read of the tenant's usage finds, across puts,
// updates, creates and deletes in one transaction; a read-only
// transaction reports none, and another tenant's usage is not mixed in.
func testUsageAfterWrites(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	other := e.Tenant(t, "globex")
	e.mustPut(t, other, "c", "x", `{"other":"tenant"}`)
	e.mustPut(t, ctx, "c", "a", `{"v":1}`)
	var after store.Usage
	var known bool
	err := e.Router.Tx(ctx, func(tx *store.Tx) error {
		if _, ok := tx.UsageAfterWrites(); ok {
			t.Error("usage known before any write")
		}
		if _, _, err := tx.Put(ctx, "c", "b", []byte(`{"v":22}`), store.IfMatch{}); err != nil {
			return err
		}
		if _, _, err := tx.Put(ctx, "c", "a", []byte(`{"v":333}`), store.IfMatch{}); err != nil {
			return err
		}
		if _, err := tx.Create(ctx, "d", []byte(`{"w":4444}`)); err != nil {
			return err
		}
		if err := tx.Delete(ctx, "c", "b", store.IfMatch{}); err != nil {
			return err
		}
		after, known = tx.UsageAfterWrites()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	u := usageOf(t, e, ctx)
	if !known {
		t.Fatalf("the write transaction did not report its usage (stored: %+v)", u)
	}
	want := store.Usage{Records: 2, Bytes: int64(len(`{"v":333}`) + len(`{"w":4444}`))}
	if after != want || u != want {
		t.Fatalf("usage after writes %+v, stored %+v, want %+v", after, u, want)
	}
	err = e.Router.ReadTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Get(ctx, "c", "a"); err != nil {
			return err
		}
		if _, ok := tx.UsageAfterWrites(); ok {
			t.Error("a read-only transaction reported usage after writes")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
