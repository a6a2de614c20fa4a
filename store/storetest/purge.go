package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// purge runs one Tx.Purge in its own write transaction.
func (e *Env) purge(ctx context.Context, coll string, before time.Time, max int) (res store.PurgeResult, err error) {
	err = e.Router.Tx(ctx, func(tx *store.Tx) error {
		var err error
		res, err = tx.Purge(ctx, coll, before, max)
		return err
	})
	return res, err
}

func (e *Env) mustPurge(t *testing.T, ctx context.Context, coll string, before time.Time, max int) store.PurgeResult {
	t.Helper()
	res, err := e.purge(ctx, coll, before, max)
	if err != nil {
		t.Fatalf("purge %s before %v: %v", coll, before, err)
	}
	return res
}

// ids returns the ids of a collection's records, in id order.
func (e *Env) ids(t *testing.T, ctx context.Context, coll string) []string {
	t.Helper()
	var out []string
	for _, r := range e.listAll(t, ctx, coll, store.MaxLimit, nil) {
		out = append(out, r.ID)
	}
	return out
}

// usageMatchesRecords checks that the tenant's usage is what it stores in
// colls: its records, and the bytes of their data.
func (e *Env) usageMatchesRecords(t *testing.T, ctx context.Context, colls ...string) {
	t.Helper()
	var want store.Usage
	for _, c := range colls {
		for _, r := range e.listAll(t, ctx, c, store.MaxLimit, nil) {
			want.Records++
			want.Bytes += int64(len(r.Data))
		}
	}
	if got := usageOf(t, e, ctx); got != want {
		t.Fatalf("usage %+v, but the tenant stores %+v", got, want)
	}
}

// testPurgeOldestFirst: a purge deletes only records last written before
// the cutoff (strictly; the cutoff is rounded up to the microsecond records
// are stamped with), the oldest first up to max, leaves other collections
// alone, and takes exactly what it deleted off the tenant's usage.
func testPurgeOldestFirst(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	keep := e.mustPut(t, ctx, "other", "keep", `{"old":true}`) // older than all of logs
	var recs []store.Record
	for i := range 5 {
		recs = append(recs, e.mustPut(t, ctx, "logs", fmt.Sprintf("r%d", i), fmt.Sprintf(`{"n":%d,"pad":"%0*d"}`, i, i+1, 0)))
	}
	// r1 is written again: it is now the newest.
	r1 := e.mustPut(t, ctx, "logs", "r1", `{"n":1,"again":true}`)
	e.usageMatchesRecords(t, ctx, "logs", "other")

	// Before r3: r0 and r2 (r1 is newer now); r3 itself is not before itself.
	res := e.mustPurge(t, ctx, "logs", recs[3].UpdatedAt, store.MaxPurge)
	want := store.PurgeResult{Records: 2, Bytes: int64(len(recs[0].Data) + len(recs[2].Data))}
	if res.Records != want.Records || res.Bytes != want.Bytes {
		t.Fatalf("purge before r3 = %+v, want %+v", res, want)
	}
	if got := fmt.Sprint(e.ids(t, ctx, "logs")); got != "[r1 r3 r4]" {
		t.Fatalf("after purging before r3: %s, want [r1 r3 r4]", got)
	}
	e.usageMatchesRecords(t, ctx, "logs", "other")

	// Half a microsecond after r3's stamp is after r3.
	if res := e.mustPurge(t, ctx, "logs", recs[3].UpdatedAt.Add(500*time.Nanosecond), store.MaxPurge); res.Records != 1 {
		t.Fatalf("purge just after r3 = %+v, want r3 alone", res)
	}
	// max bounds the purge, the oldest going first: r4, then r1.
	far := r1.UpdatedAt.Add(time.Hour)
	if res := e.mustPurge(t, ctx, "logs", far, 1); res.Records != 1 || res.Bytes != int64(len(recs[4].Data)) {
		t.Fatalf("purge of 1 = %+v, want r4", res)
	}
	if got := fmt.Sprint(e.ids(t, ctx, "logs")); got != "[r1]" {
		t.Fatalf("after purging one: %s, want [r1]", got)
	}
	if res := e.mustPurge(t, ctx, "logs", far, 1); res.Records != 1 {
		t.Fatalf("purge of the last = %+v", res)
	}
	if res := e.mustPurge(t, ctx, "logs", far, store.MaxPurge); res.Records != 0 || res.Bytes != 0 {
		t.Fatalf("purge of an empty collection = %+v, want nothing", res)
	}
	if got, err := e.get(ctx, "other", "keep"); err != nil || string(got.Data) != string(keep.Data) {
		t.Fatalf("other collection: %+v %v", got, err)
	}
	e.usageMatchesRecords(t, ctx, "logs", "other")
}

// testPurgeStopsAtMax: a purge deletes exactly max of many expired
// records, the oldest, whatever order their ids sort in.
func testPurgeStopsAtMax(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	var last store.Record
	for _, id := range []string{"z", "y", "x", "w", "v", "u"} { // z is the oldest
		last = e.mustPut(t, ctx, "logs", id, `{}`)
	}
	far := last.UpdatedAt.Add(time.Hour)
	for _, step := range []struct {
		max  int
		left string
	}{{2, "[u v w x]"}, {1, "[u v w]"}, {3, "[]"}} {
		res := e.mustPurge(t, ctx, "logs", far, step.max)
		if res.Records != int64(step.max) {
			t.Fatalf("purge of %d deleted %d", step.max, res.Records)
		}
		if got := fmt.Sprint(e.ids(t, ctx, "logs")); got != step.left {
			t.Fatalf("after a purge of %d: %s, want %s", step.max, got, step.left)
		}
	}
	// Ids in the order of age too (a PostgreSQL plan that rescans the
	// victims per deleted row went past max only in this order).
	for _, id := range []string{"a1", "a2", "a3", "a4", "a5"} {
		last = e.mustPut(t, ctx, "logs", id, `{}`)
	}
	if res := e.mustPurge(t, ctx, "logs", last.UpdatedAt.Add(time.Hour), 2); res.Records != 2 {
		t.Fatalf("purge of 2 deleted %d", res.Records)
	}
	if got := fmt.Sprint(e.ids(t, ctx, "logs")); got != "[a3 a4 a5]" {
		t.Fatalf("after a purge of 2: %s, want [a3 a4 a5]", got)
	}
	e.usageMatchesRecords(t, ctx, "logs")
}

// testPurgeStaysInTenant: tenant A's purge, with a cutoff after every
// record, never touches tenant B's records of the same collection, ids and
// ages, nor B's usage.
func testPurgeStaysInTenant(t *testing.T, e *Env) {
	a, b := e.Tenant(t, "acme"), e.Tenant(t, "globex")
	var last store.Record
	bRecs := map[string]store.Record{}
	for i := range 6 {
		id := fmt.Sprintf("x%d", i)
		e.mustPut(t, a, "logs", id, `{"who":"acme"}`)
		last = e.mustPut(t, b, "logs", id, `{"who":"globex"}`)
		bRecs[id] = last
	}
	bUsage := usageOf(t, e, b)
	res := e.mustPurge(t, a, "logs", last.UpdatedAt.Add(time.Hour), store.MaxPurge)
	if res.Records != 6 {
		t.Fatalf("acme's purge = %+v, want its 6 records", res)
	}
	if ids := e.ids(t, a, "logs"); len(ids) != 0 {
		t.Fatalf("acme still has %v", ids)
	}
	for id, want := range bRecs {
		got, err := e.get(b, "logs", id)
		if err != nil || string(got.Data) != string(want.Data) || got.Version != want.Version {
			t.Fatalf("globex's %s after acme's purge: %+v %v", id, got, err)
		}
	}
	if u := usageOf(t, e, b); u != bUsage {
		t.Fatalf("globex's usage moved with acme's purge: %+v, was %+v", u, bUsage)
	}
	e.usageMatchesRecords(t, a, "logs")
	e.usageMatchesRecords(t, b, "logs")
	// A transaction of acme used with globex's context purges nothing.
	err := e.Router.Tx(a, func(tx *store.Tx) error {
		_, err := tx.Purge(b, "logs", last.UpdatedAt.Add(time.Hour), store.MaxPurge)
		return err
	})
	if !errors.Is(err, store.ErrTenantMismatch) {
		t.Fatalf("purge with another tenant's context: %v, want ErrTenantMismatch", err)
	}
	if n := len(e.ids(t, b, "logs")); n != 6 {
		t.Fatalf("globex has %d records, want 6", n)
	}
}

// testPurgeRefusesBadInput: bad bounds, a bad collection and a read-only
// transaction are refused and delete nothing; a purge frees quota.
func testPurgeRefusesBadInput(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	id, _ := tenant.FromContext(ctx)
	var last store.Record
	for i := range 3 {
		last = e.mustPut(t, ctx, "logs", fmt.Sprintf("r%d", i), `{}`)
	}
	far := last.UpdatedAt.Add(time.Hour)
	for _, c := range []struct {
		coll string
		max  int
		want error
	}{
		{"logs", 0, store.ErrInvalidLimit},
		{"logs", -1, store.ErrInvalidLimit},
		{"logs", store.MaxPurge + 1, store.ErrInvalidLimit},
		{"Bad-Name", 10, store.ErrInvalidCollection},
		{"", 10, store.ErrInvalidCollection},
	} {
		if _, err := e.purge(ctx, c.coll, far, c.max); !errors.Is(err, c.want) {
			t.Errorf("purge(%q, max %d) = %v, want %v", c.coll, c.max, err, c.want)
		}
	}
	if err := e.Router.ReadTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Purge(ctx, "logs", far, 10)
		return err
	}); err == nil {
		t.Error("purge in a read-only transaction succeeded")
	}
	if n := len(e.ids(t, ctx, "logs")); n != 3 {
		t.Fatalf("refused purges deleted records: %d left of 3", n)
	}
	// At its record quota the tenant cannot write; a purge makes room.
	e.Quotas.Set(id, 3, 0)
	if _, _, err := e.put(ctx, "logs", "r9", `{}`, store.IfMatch{}); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("write at quota: %v", err)
	}
	e.mustPurge(t, ctx, "logs", far, 2)
	e.mustPut(t, ctx, "logs", "r9", `{}`)
	e.usageMatchesRecords(t, ctx, "logs")
}
