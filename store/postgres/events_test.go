package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var allModes = []store.Mode{store.Pooled, store.Schema, store.Database}

// readEvents returns all of the tenant's events after after, and the head.
func readEvents(t *testing.T, r *store.Router, ctx context.Context, after int64, collections ...string) ([]store.Event, int64) {
	t.Helper()
	var evs []store.Event
	var head int64
	if err := r.ReadTx(ctx, func(tx *store.Tx) (err error) {
		evs, head, err = tx.Events(ctx, after, store.MaxEventPage, collections)
		return err
	}); err != nil {
		t.Fatalf("events after %d: %v", after, err)
	}
	return evs, head
}

// brief is an event without its time, for comparisons.
func brief(evs []store.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%d %s %s/%s %s v%d %s %s", e.Seq, e.Tenant, e.Collection, e.ID, e.Op, e.Version, e.Reason, e.Data)
	}
	return out
}

func put(t *testing.T, r *store.Router, ctx context.Context, c, id, data string) {
	t.Helper()
	if err := r.Tx(ctx, func(tx *store.Tx) error {
		_, _, err := tx.Put(ctx, c, id, []byte(data), store.IfMatch{})
		return err
	}); err != nil {
		t.Fatalf("put %s/%s: %v", c, id, err)
	}
}

// Every write and delete appends one event in its transaction, numbered
// 1, 2, 3, ... per tenant; a rolled-back transaction takes its numbers
// back; another tenant's writes neither show nor move the numbers; a
// tenant deleted and created again starts at 1 with nothing of the old
// one's.
func TestOutboxNumbersEachTenantsEventsAlone(t *testing.T) {
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			w := newWorld(t, mode, 4)
			r := w.e.Router
			acme, globex := w.e.Tenant(t, "acme"), w.e.Tenant(t, "globex")
			put(t, r, acme, "docs", "a", `{"v":1}`)
			put(t, r, globex, "docs", "a", `{"secret":"globex"}`)
			put(t, r, acme, "docs", "a", `{"v":2}`)
			put(t, r, acme, "notes", "n", `{}`)
			// A rolled-back write takes its Seq back.
			boom := errors.New("boom")
			if err := r.Tx(acme, func(tx *store.Tx) error {
				if _, _, err := tx.Put(acme, "docs", "b", []byte(`{}`), store.IfMatch{}); err != nil {
					return err
				}
				if _, head, err := tx.Events(acme, 0, 10, nil); err != nil || head != 4 {
					t.Errorf("head inside the transaction = %d, %v; want 4 (its own write seen)", head, err)
				}
				return boom
			}); !errors.Is(err, boom) {
				t.Fatal(err)
			}
			if err := r.Tx(acme, func(tx *store.Tx) error { return tx.Delete(acme, "docs", "a", store.IfMatch{}) }); err != nil {
				t.Fatal(err)
			}
			evs, head := readEvents(t, r, acme, 0)
			want := []string{"1 acme docs/a create v1  ", "2 acme docs/a update v2  ", "3 acme notes/n create v1  ", "4 acme docs/a delete v2  "}
			if got := brief(evs); strings.Join(got, "|") != strings.Join(want, "|") || head != 4 {
				t.Fatalf("acme's events = %q head %d, want %q head 4", got, head, want)
			}
			for i := 1; i < len(evs); i++ {
				if evs[i].At.Before(evs[i-1].At) || evs[i].At.IsZero() {
					t.Errorf("event times go back: %v after %v", evs[i].At, evs[i-1].At)
				}
			}
			if evs, head := readEvents(t, r, globex, 0); len(evs) != 1 || head != 1 || evs[0].Tenant.String() != "globex" {
				t.Fatalf("globex's events = %q head %d, want its one write", brief(evs), head)
			}
			// Filters and positions.
			if evs, _ := readEvents(t, r, acme, 1, "docs"); strings.Join(brief(evs), "|") != want[1]+"|"+want[3] {
				t.Errorf("acme's docs events after 1 = %q", brief(evs))
			}
			// globex's head is 1: a position of acme's (4) is beyond it.
			if err := r.ReadTx(globex, func(tx *store.Tx) error { _, _, err := tx.Events(globex, 4, 10, nil); return err }); !errors.Is(err, store.ErrEventPosition) {
				t.Errorf("globex reading from acme's position = %v, want ErrEventPosition", err)
			}

			// Offsets are the tenant's own.
			if err := r.Tx(acme, func(tx *store.Tx) error { return tx.SetEventOffset(acme, "mailer", 3) }); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				ctx  context.Context
				want int64
			}{{acme, 3}, {globex, 0}} {
				var got int64
				if err := r.ReadTx(c.ctx, func(tx *store.Tx) (err error) { got, err = tx.EventOffset(c.ctx, "mailer"); return err }); err != nil || got != c.want {
					t.Errorf("offset = %d, %v; want %d", got, err, c.want)
				}
			}

			// Deleted and created again: a new incarnation, at 1.
			w.e.Offboard(t, "acme")
			acme = w.e.Tenant(t, "acme")
			if evs, head := readEvents(t, r, acme, 0); len(evs) != 0 || head != 0 {
				t.Fatalf("acme created again sees events %q head %d, want none", brief(evs), head)
			}
			if err := r.ReadTx(acme, func(tx *store.Tx) error { _, _, err := tx.Events(acme, 4, 10, nil); return err }); !errors.Is(err, store.ErrEventPosition) {
				t.Errorf("a position of the old acme = %v, want ErrEventPosition", err)
			}
			var off int64
			if err := r.ReadTx(acme, func(tx *store.Tx) (err error) { off, err = tx.EventOffset(acme, "mailer"); return err }); err != nil || off != 0 {
				t.Errorf("the old acme's offset reached the new one: %d, %v", off, err)
			}
			put(t, r, acme, "docs", "x", `{}`)
			if evs, _ := readEvents(t, r, acme, 0); len(evs) != 1 || evs[0].Seq != 1 {
				t.Fatalf("acme created again: first events %q, want Seq 1", brief(evs))
			}
		})
	}
}

// Trimming deletes the oldest events, by age or beyond a count, and never
// moves the head: numbering goes on after everything has been trimmed,
// and a reader behind the oldest event kept is told to start over.
func TestOutboxTrimKeepsTheHead(t *testing.T) {
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			w := newWorld(t, mode, 4)
			r := w.e.Router
			ctx := w.e.Tenant(t, "acme")
			for i := range 5 {
				put(t, r, ctx, "docs", fmt.Sprintf("d%d", i), `{}`)
			}
			evs, _ := readEvents(t, r, ctx, 0)
			trim := func(before time.Time, keep, max int) int64 {
				t.Helper()
				var n int64
				if err := r.Tx(ctx, func(tx *store.Tx) (err error) { n, err = tx.TrimEvents(ctx, before, keep, max); return err }); err != nil {
					t.Fatal(err)
				}
				return n
			}
			if n := trim(evs[2].At, 0, 1); n != 1 { // older than the third: two, but at most one
				t.Fatalf("trim by age, max 1, deleted %d", n)
			}
			if n := trim(evs[2].At, 0, 10); n != 1 {
				t.Fatalf("trim by age deleted %d, want the second event", n)
			}
			if n := trim(time.Time{}, 2, 10); n != 1 { // keep the newest two
				t.Fatalf("trim keeping 2 deleted %d, want 1", n)
			}
			if got, _ := readEvents(t, r, ctx, 3); len(got) != 2 || got[0].Seq != 4 {
				t.Fatalf("events after trimming = %q", brief(got))
			}
			if err := r.ReadTx(ctx, func(tx *store.Tx) error { _, _, err := tx.Events(ctx, 2, 10, nil); return err }); !errors.Is(err, store.ErrEventsExpired) {
				t.Fatalf("reading from a trimmed position = %v, want ErrEventsExpired", err)
			}
			if n := trim(time.Now().Add(time.Hour*24*365*100), 0, 10); n != 2 {
				t.Fatalf("trim everything deleted %d", n)
			}
			if got, head := readEvents(t, r, ctx, 5); len(got) != 0 || head != 5 {
				t.Fatalf("after trimming all: %q head %d, want none and head 5", brief(got), head)
			}
			put(t, r, ctx, "docs", "d9", `{}`)
			if got, _ := readEvents(t, r, ctx, 5); len(got) != 1 || got[0].Seq != 6 {
				t.Fatalf("first event after trimming all = %q, want Seq 6", brief(got))
			}
		})
	}
}

// A retention purge names each record it deleted, so each gets its delete
// event with reason "retention", in the purge's transaction.
func TestPurgeAppendsRetentionEvents(t *testing.T) {
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			w := newWorld(t, mode, 4)
			r := w.e.Router
			ctx := w.e.Tenant(t, "acme")
			other := w.e.Tenant(t, "globex")
			put(t, r, ctx, "logs", "a", `{"n":1}`)
			put(t, r, ctx, "logs", "b", `{"n":22}`)
			put(t, r, ctx, "logs", "b", `{"n":333}`)
			put(t, r, other, "logs", "a", `{}`)
			put(t, r, ctx, "logs", "c", `{}`)
			var res store.PurgeResult
			if err := r.Tx(ctx, func(tx *store.Tx) (err error) {
				res, err = tx.Purge(ctx, "logs", time.Now().Add(24*time.Hour*365*100), 2)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if res.Records != 2 || res.Bytes != int64(len(`{"n":1}`)+len(`{"n":333}`)) || len(res.Deleted) != 2 {
				t.Fatalf("purge = %+v", res)
			}
			evs, _ := readEvents(t, r, ctx, 4)
			want := []string{"5 acme logs/a delete v1 retention ", "6 acme logs/b delete v2 retention "}
			if got := brief(evs); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("events after the purge = %q, want %q", got, want)
			}
			if evs, head := readEvents(t, r, other, 0); len(evs) != 1 || head != 1 {
				t.Fatalf("globex's outbox after acme's purge: %q head %d", brief(evs), head)
			}
		})
	}
}

// Bulkhead's outbox statements bind the transaction's tenant as $1, like
// the record statements: defence in depth beside row-level security.
func TestOutboxStatementsBindTheTenant(t *testing.T) {
	for _, q := range []string{sqlEventsAppend, sqlEvents, sqlEventsTrim, sqlEventOffset, sqlEventOffsetSet} {
		// Every reference to an outbox table is followed by a tenant
		// predicate or an insert of $1.
		for _, table := range []string{"tenant_events", "tenant_event_offsets"} {
			for _, part := range strings.Split(q, table)[1:] {
				if part != "" && part[0] != ' ' && part[0] != '\n' && part[0] != '.' {
					continue // a longer name
				}
				if !strings.Contains(part, "tenant_id = $1") && !strings.Contains(part, "VALUES ($1") && !strings.HasPrefix(strings.TrimSpace(part), "(tenant_id") {
					t.Errorf("a reference to %s without the tenant bound as $1: ...%s%.60s", table, table, part)
				}
			}
		}
		if !strings.Contains(q, "$1") {
			t.Errorf("statement does not bind the tenant: %s", q)
		}
		if got := qualify(pooledSchema, q); strings.Count(got, `"bulkhead".tenant_event`) == 0 {
			t.Errorf("qualify names no outbox table in %s", q)
		}
	}
}

// Team SQL in a tenant transaction, in every mode, cannot read, write or
// delete another tenant's events or offsets, nor bump its head, even
// naming the tables qualified or forging bulkhead.tenant.
func TestTeamSQLCannotReachAnotherTenantsOutbox(t *testing.T) {
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			w := newWorld(t, mode, 4)
			r := w.e.Router
			acme, globex := w.e.Tenant(t, "acme"), w.e.Tenant(t, "globex")
			put(t, r, globex, "docs", "g", `{"secret":1}`)
			if err := r.Tx(globex, func(tx *store.Tx) error { return tx.SetEventOffset(globex, "mailer", 1) }); err != nil {
				t.Fatal(err)
			}
			put(t, r, acme, "docs", "a", `{}`)
			// The tables acme's SQL might try: its own unit's, unqualified,
			// and globex's by name in schema mode; the pooled tables by name.
			names := []string{"tenant_events", "bulkhead.tenant_events"}
			offsets := []string{"tenant_event_offsets", "bulkhead.tenant_event_offsets"}
			if mode == store.Schema {
				g := tenant.MustParse("globex").StorageName()
				names = append(names, ident(g, "tenant_events"))
				offsets = append(offsets, ident(g, "tenant_event_offsets"))
			}
			for _, forge := range []bool{false, true} {
				for i := range names {
					err := Tx(acme, r, func(tx pgx.Tx) error {
						if forge {
							if _, err := tx.Exec(acme, `SELECT set_config('bulkhead.tenant', 'globex', true)`); err != nil {
								return err
							}
						}
						var seen []string
						for _, q := range []string{`SELECT tenant_id FROM ` + names[i], `SELECT tenant_id FROM ` + offsets[i]} {
							if err := sp(acme, tx, func(tx pgx.Tx) error {
								rows, err := tx.Query(acme, q)
								if err != nil {
									return err
								}
								got, err := pgx.CollectRows(rows, pgx.RowTo[string])
								seen = append(seen, got...)
								return err
							}); err != nil {
								continue // permission denied: nothing seen either
							}
						}
						for _, s := range seen {
							if s != "acme" {
								return fmt.Errorf("%s: acme's SQL sees a row of %s", names[i], s)
							}
						}
						for _, q := range []string{
							`INSERT INTO ` + names[i] + ` (tenant_id, seq, collection, id, op, version, at) VALUES ('globex', 99, 'docs', 'g', 'delete', 1, now())`,
							`INSERT INTO ` + offsets[i] + ` (tenant_id, consumer, seq) VALUES ('globex', 'evil', 7)`,
							`INSERT INTO ` + offsets[i] + ` (tenant_id, consumer, seq) VALUES ('globex', '$head', 1000)`,
						} {
							if err := sp(acme, tx, func(tx pgx.Tx) error { _, err := tx.Exec(acme, q); return err }); err == nil {
								return fmt.Errorf("acme's SQL wrote globex's outbox: %s", q)
							}
						}
						for _, q := range []string{
							`UPDATE ` + offsets[i] + ` SET seq = 1000 WHERE tenant_id = 'globex'`,
							`DELETE FROM ` + names[i] + ` WHERE tenant_id = 'globex'`,
							`DELETE FROM ` + offsets[i] + ` WHERE tenant_id = 'globex'`,
						} {
							var n int64
							err := sp(acme, tx, func(tx pgx.Tx) error {
								tag, err := tx.Exec(acme, q)
								n = tag.RowsAffected()
								return err
							})
							if err == nil && n != 0 {
								return fmt.Errorf("acme's SQL changed %d rows of globex's outbox: %s", n, q)
							}
						}
						return nil
					})
					if err != nil {
						t.Fatalf("forge %v: %v", forge, err)
					}
				}
			}
			// globex's outbox is as it was.
			evs, head := readEvents(t, r, globex, 0)
			if len(evs) != 1 || head != 1 || evs[0].ID != "g" {
				t.Fatalf("globex's events after acme's attempts: %q head %d", brief(evs), head)
			}
			var off int64
			if err := r.ReadTx(globex, func(tx *store.Tx) (err error) { off, err = tx.EventOffset(globex, "mailer"); return err }); err != nil || off != 1 {
				t.Fatalf("globex's offset after acme's attempts: %d, %v", off, err)
			}
			if err := r.ReadTx(globex, func(tx *store.Tx) (err error) { off, err = tx.EventOffset(globex, "evil"); return err }); err != nil || off != 0 {
				t.Fatalf("a consumer acme's SQL tried to plant for globex: %d, %v", off, err)
			}
			put(t, r, globex, "docs", "g2", `{}`)
			if evs, _ := readEvents(t, r, globex, 1); len(evs) != 1 || evs[0].Seq != 2 {
				t.Fatalf("globex's next event = %q, want Seq 2 (head untouched)", brief(evs))
			}
		})
	}
}

// sp runs fn in a savepoint of tx, rolled back if fn fails, so that a
// refused statement does not abort the transaction.
func sp(ctx context.Context, tx pgx.Tx, fn func(pgx.Tx) error) error {
	s, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(s); err != nil {
		_ = s.Rollback(ctx)
		return err
	}
	return s.Commit(ctx)
}

// The reserved head row is no consumer: neither the store API nor the
// backend reads or moves it under a consumer's name.
func TestHeadIsNoConsumer(t *testing.T) {
	w := newWorld(t, store.Pooled, 2)
	r := w.e.Router
	ctx := w.e.Tenant(t, "acme")
	put(t, r, ctx, "docs", "a", `{}`)
	if err := r.Tx(ctx, func(tx *store.Tx) error { return tx.SetEventOffset(ctx, headConsumer, 100) }); !errors.Is(err, store.ErrInvalidConsumer) {
		t.Fatalf("SetEventOffset(%q) = %v, want ErrInvalidConsumer", headConsumer, err)
	}
	btx, err := w.b.Begin(ctx, tenant.MustParse("acme"), store.Pooled, true)
	if err != nil {
		t.Fatal(err)
	}
	defer btx.Rollback()
	et := btx.(store.EventTx)
	if err := et.SetEventOffset(ctx, headConsumer, 100); !errors.Is(err, store.ErrInvalidConsumer) {
		t.Fatalf("backend SetEventOffset(%q) = %v, want ErrInvalidConsumer", headConsumer, err)
	}
	if _, err := et.EventOffset(ctx, headConsumer); !errors.Is(err, store.ErrInvalidConsumer) {
		t.Fatalf("backend EventOffset(%q) = %v, want ErrInvalidConsumer", headConsumer, err)
	}
	if err := et.AppendEvents(ctx, []store.Event{{Tenant: tenant.MustParse("globex"), Collection: "docs", ID: "x", Op: store.OpCreate, Version: 1, At: time.Now()}}); !errors.Is(err, store.ErrTenantMismatch) {
		t.Fatalf("backend AppendEvents of another tenant's event = %v, want ErrTenantMismatch", err)
	}
}
