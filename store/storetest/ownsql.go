package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Note is one row of the team's own table notes, as OwnSQL reads it.
type Note struct{ ID, Body string }

// OwnSQL tells RunOwnSQL and RunMixed how a team's own SQL runs on an
// engine. The suite stays engine-neutral: it reaches the engine's handle on
// a transaction (store.Tx.SQL: a pgx.Tx, a *sql.Tx) only through these
// functions, which the backend's test writes in the engine's SQL.
type OwnSQL struct {
	// Migrations create the team's table notes (tenant_id, id, body) with
	// tenant_id first in its primary key. The suite applies them
	// (migrate.Applier) to the unit of every tenant it provisions in a mode
	// of Modes.
	Migrations []migrate.Migration
	// Insert adds the note (id, body) through h, a handle on a transaction
	// of the tenant in ctx, giving tenant_id only as the engine needs it
	// (tenant.FromContext(ctx)). Inserting an id the tenant already has
	// must fail; an id another tenant has must not.
	Insert func(ctx context.Context, h any, id, body string) error
	// Notes returns every note visible through h WITHOUT a tenant
	// predicate: only the engine's guards apply.
	Notes func(ctx context.Context, h any) ([]Note, error)
	// Attacks are the engine's attacks on the tenant boundary.
	Attacks []Attack
	// Modes are the modes in which the backend runs own SQL. In the other
	// modes it supports, a transaction with own SQL must be refused with an
	// error wrapping store.ErrIsolationUnsupported.
	Modes []store.Mode
}

// Victim is the tenant an Attack tries to reach, and where it lives.
type Victim struct {
	Tenant    tenant.ID
	Placement store.Placement
	Backend   store.Backend // the backend of the victim's shard
}

// Attack is SQL an attacker (say, an injection in a team's handler) runs
// inside tenant A's transaction to reach tenant B, the Victim.
type Attack struct {
	// Name says what the attack does, as a sentence.
	Name string
	// ReadOnly runs the attack in a read-only transaction of the attacker,
	// which must then also leave the attacker's own rows unchanged.
	ReadOnly bool
	// Run runs the attack through h, the handle on a transaction of the
	// attacker (the tenant in ctx), after the victim wrote notes and
	// records. It returns every value it read (note bodies, record data:
	// every value the victim wrote carries a mark the suite looks for), or
	// the error that stopped it. Unless Run fails, the suite then reads
	// Notes in the same transaction and commits it, even if that read failed
	// (so Notes should not poison the transaction on engines where a failed
	// statement does: a savepoint on PostgreSQL). Whatever happens, the
	// victim's notes and records, read through its own transaction
	// afterwards, must be unchanged, and nothing read may be the victim's.
	Run func(ctx context.Context, h any, v Victim) (seen []string, err error)
}

// RunOwnSQL runs the own-SQL conformance cases against backends that
// newBackend makes: for every mode of own.Modes, tenants see only their own
// rows (checked against a model), read-only transactions refuse writes,
// record operations and own rows commit and roll back together, no tenant
// fails closed, a re-created tenant starts empty and every attack sees and
// changes nothing of its victim; in the other modes the backend supports,
// own SQL is refused.
func RunOwnSQL(t *testing.T, newBackend func(t *testing.T) store.Backend, own OwnSQL) {
	t.Helper()
	o := &own
	tests := []envTest{
		{"TenantsSeeOnlyTheirOwnRows", o.testModel},
		{"ReadOnlyTransactionsRefuseWrites", o.testReadOnly},
		{"RecordsAndOwnRowsCommitAndRollBackTogether", o.testTogether},
		{"NoTenantFailsClosedAndRunsNothing", o.testNoTenant},
		{"RecreatedTenantSeesNoneOfTheOldRows", o.testRecreate},
		{"AttacksFromAnotherTenantSeeAndChangeNothing", o.testAttacks},
	}
	for _, mode := range o.Modes {
		t.Run(string(mode), func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, NewEnv(t, newBackend(t), mode))
				})
			}
		})
	}
	t.Run("ModesWithoutOwnSQLRefuseIt", func(t *testing.T) {
		probe := newBackend(t)
		defer func() { _ = probe.Close() }()
		refused := 0
		for _, mode := range []store.Mode{store.Pooled, store.Schema, store.Database} {
			if o.has(mode) || probe.Supports(mode) != nil {
				continue
			}
			refused++
			t.Run(string(mode), func(t *testing.T) {
				t.Parallel()
				o.testRefused(t, NewEnv(t, newBackend(t), mode))
			})
		}
		if refused == 0 {
			// The backend runs own SQL in every mode it hosts: each opens.
			for _, mode := range o.Modes {
				e := NewEnv(t, newBackend(t), mode)
				ctx := o.tenant(t, e, "probe")
				tx, err := e.Router.Begin(ctx, store.TxOptions{SQL: true, ReadOnly: true})
				if err != nil {
					t.Fatalf("%s: own SQL refused in a mode it claims: %v", mode, err)
				}
				_ = tx.Rollback()
			}
		}
	})
}

// has reports whether own SQL runs in mode.
func (o *OwnSQL) has(mode store.Mode) bool { return slices.Contains(o.Modes, mode) }

// tenant provisions name in e and, where it gets own SQL, applies the
// migrations to its unit.
func (o *OwnSQL) tenant(t *testing.T, e *Env, name string) context.Context {
	t.Helper()
	ctx := e.Tenant(t, name)
	o.migrate(t, e, name)
	return ctx
}

// migrate applies the migrations to tenant name's unit where it gets own
// SQL.
func (o *OwnSQL) migrate(t *testing.T, e *Env, name string) {
	t.Helper()
	p := e.PlacementOf(name)
	if !o.has(p.Mode) || len(o.Migrations) == 0 {
		return
	}
	a, ok := e.Shards[p.Shard].(migrate.Applier)
	if !ok {
		t.Fatalf("shard %s (%T) runs own SQL but applies no migrations (migrate.Applier)", p.Shard, e.Shards[p.Shard])
	}
	u := migrate.Unit{Shard: p.Shard, Mode: p.Mode}
	if p.Mode != store.Pooled {
		u.Tenant = tenant.MustParse(name)
	}
	v, err := a.Apply(context.Background(), u, o.Migrations)
	if err != nil || v != migrate.Latest(o.Migrations) {
		t.Fatalf("apply migrations to %s: version %d, %v; want %d", u, v, err, migrate.Latest(o.Migrations))
	}
}

// sqlRun runs fn in a transaction of the tenant in ctx opened for own SQL,
// with the engine's handle.
func sqlRun(e *Env, ctx context.Context, readOnly bool, fn func(tx *store.Tx, h any) error) error {
	return e.Router.Run(ctx, store.TxOptions{SQL: true, ReadOnly: readOnly}, func(tx *store.Tx) error {
		h, err := tx.SQL()
		if err != nil {
			return err
		}
		return fn(tx, h)
	})
}

// notes returns the tenant's notes by id, read in a read-only transaction.
func (o *OwnSQL) notes(t *testing.T, e *Env, ctx context.Context) []Note {
	t.Helper()
	var ns []Note
	err := sqlRun(e, ctx, true, func(_ *store.Tx, h any) error {
		var err error
		ns, err = o.sortedNotes(ctx, h)
		return err
	})
	if err != nil {
		t.Fatalf("read notes: %v", err)
	}
	return ns
}

func (o *OwnSQL) sortedNotes(ctx context.Context, h any) ([]Note, error) {
	ns, err := o.Notes(ctx, h)
	slices.SortFunc(ns, func(a, b Note) int { return strings.Compare(a.ID, b.ID) })
	return ns, err
}

func (o *OwnSQL) insert(t *testing.T, e *Env, ctx context.Context, id, body string) {
	t.Helper()
	if err := sqlRun(e, ctx, false, func(_ *store.Tx, h any) error { return o.Insert(ctx, h, id, body) }); err != nil {
		t.Fatalf("insert note %s: %v", id, err)
	}
}

func wantNotes(t *testing.T, what string, got []Note, want ...Note) {
	t.Helper()
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("%s: notes %v, want %v", what, got, want)
	}
}

func (o *OwnSQL) testReadOnly(t *testing.T, e *Env) {
	ctx := o.tenant(t, e, "acme")
	o.insert(t, e, ctx, "n1", "one")
	err := sqlRun(e, ctx, true, func(_ *store.Tx, h any) error { return o.Insert(ctx, h, "n2", "two") })
	if err == nil {
		t.Fatal("own INSERT in a read-only transaction committed")
	}
	err = sqlRun(e, ctx, true, func(tx *store.Tx, _ any) error {
		_, _, err := tx.Put(ctx, "notes", "r1", []byte(`{}`), store.IfMatch{})
		return err
	})
	if err == nil {
		t.Fatal("Put in a read-only own-SQL transaction committed")
	}
	wantNotes(t, "after refused writes", o.notes(t, e, ctx), Note{"n1", "one"})
	if _, err := e.get(ctx, "notes", "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record written in a read-only transaction: %v", err)
	}
	o.insert(t, e, ctx, "n2", "two") // the same write in a read-write transaction works
	wantNotes(t, "after a read-write insert", o.notes(t, e, ctx), Note{"n1", "one"}, Note{"n2", "two"})
}

func (o *OwnSQL) testTogether(t *testing.T, e *Env) {
	ctx := o.tenant(t, e, "acme")
	both := func(rec, note string) func(tx *store.Tx, h any) error {
		return func(tx *store.Tx, h any) error {
			if _, _, err := tx.Put(ctx, "notes", rec, []byte(`{"n":"`+note+`"}`), store.IfMatch{}); err != nil {
				return err
			}
			return o.Insert(ctx, h, note, "body of "+note)
		}
	}
	if err := sqlRun(e, ctx, false, both("r1", "n1")); err != nil {
		t.Fatalf("record and own row in one transaction: %v", err)
	}
	boom := errors.New("boom")
	err := sqlRun(e, ctx, false, func(tx *store.Tx, h any) error {
		if err := both("r2", "n2")(tx, h); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("transaction returned %v, want the callback's error", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("recovered %v, want the callback's panic", p)
			}
		}()
		_ = sqlRun(e, ctx, false, func(tx *store.Tx, h any) error {
			if err := both("r3", "n3")(tx, h); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	// A failing own statement (a duplicate key) takes the record with it.
	if err := sqlRun(e, ctx, false, both("r4", "n1")); err == nil {
		t.Fatal("a duplicate own row committed")
	}
	wantNotes(t, "after commit, error, panic and a failed statement", o.notes(t, e, ctx), Note{"n1", "body of n1"})
	if got := ids(e.listAll(t, ctx, "notes", 10, nil)); !slices.Equal(got, []string{"r1"}) {
		t.Fatalf("records after commit, error, panic and a failed statement: %q, want [r1]", got)
	}
}

func (o *OwnSQL) testNoTenant(t *testing.T, e *Env) {
	acme := o.tenant(t, e, "acme")
	o.insert(t, e, acme, "n1", "one")
	ctx := context.Background()
	for _, ro := range []bool{false, true} {
		_, err := e.Router.Begin(ctx, store.TxOptions{SQL: true, ReadOnly: ro})
		wantErr(t, fmt.Sprintf("own-SQL Begin without a tenant (read-only %v)", ro), err, tenant.ErrMissing)
		err = sqlRun(e, ctx, ro, func(_ *store.Tx, h any) error {
			t.Errorf("an own-SQL transaction function ran without a tenant")
			return o.Insert(ctx, h, "n2", "two")
		})
		wantErr(t, fmt.Sprintf("own-SQL Run without a tenant (read-only %v)", ro), err, tenant.ErrMissing)
	}
	if sb, ok := e.Backend.(store.SQLBackend); ok {
		_, err := sb.BeginSQL(ctx, tenant.ID{}, e.Mode, true)
		wantErr(t, "backend BeginSQL with the zero tenant", err, tenant.ErrMissing)
	}
	wantNotes(t, "after refused calls", o.notes(t, e, acme), Note{"n1", "one"})
}

func (o *OwnSQL) testRecreate(t *testing.T, e *Env) {
	a, b := o.tenant(t, e, "tenant-a"), o.tenant(t, e, "tenant-b")
	o.insert(t, e, a, "n1", "old a")
	o.insert(t, e, a, "n2", "old a")
	o.insert(t, e, b, "n1", "b")
	e.mustPut(t, a, "notes", "r1", `{"owner":"old a"}`)
	e.Offboard(t, "tenant-a")
	_, err := e.Router.Begin(a, store.TxOptions{SQL: true})
	wantErr(t, "own-SQL Begin for an offboarded tenant", err, store.ErrUnknownTenant)
	a = o.tenant(t, e, "tenant-a")
	wantNotes(t, "re-created tenant", o.notes(t, e, a))
	if recs := e.listAll(t, a, "notes", 10, nil); len(recs) != 0 {
		t.Fatalf("re-created tenant lists records %q", ids(recs))
	}
	o.insert(t, e, a, "n1", "new a") // the old incarnation's key is gone
	wantNotes(t, "re-created tenant after an insert", o.notes(t, e, a), Note{"n1", "new a"})
	wantNotes(t, "the other tenant", o.notes(t, e, b), Note{"n1", "b"})
}

func (o *OwnSQL) testRefused(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	e.mustPut(t, ctx, "notes", "r1", `{}`)
	for _, ro := range []bool{false, true} {
		_, err := e.Router.Begin(ctx, store.TxOptions{SQL: true, ReadOnly: ro})
		wantErr(t, fmt.Sprintf("own-SQL Begin in mode %s (read-only %v)", e.Mode, ro), err, store.ErrIsolationUnsupported)
		err = sqlRun(e, ctx, ro, func(*store.Tx, any) error {
			t.Errorf("an own-SQL transaction function ran in mode %s", e.Mode)
			return nil
		})
		wantErr(t, fmt.Sprintf("own-SQL Run in mode %s (read-only %v)", e.Mode, ro), err, store.ErrIsolationUnsupported)
	}
	if sb, ok := e.Backend.(store.SQLBackend); ok {
		_, err := sb.BeginSQL(context.Background(), tenant.MustParse("acme"), e.Mode, true)
		wantErr(t, "backend BeginSQL in mode "+string(e.Mode), err, store.ErrIsolationUnsupported)
	}
	if _, err := e.get(ctx, "notes", "r1"); err != nil { // records still work
		t.Fatalf("record after refused own SQL: %v", err)
	}
}
