package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
)

// ownModel is one tenant's expected own rows and records (collection
// "notes"): id → body, id → normalized data.
type ownModel struct {
	notes map[string]string
	recs  map[string]string
}

func (m ownModel) clone() ownModel {
	return ownModel{notes: maps.Clone(m.notes), recs: maps.Clone(m.recs)}
}

func (m ownModel) noteList() []Note {
	var ns []Note
	for _, id := range slices.Sorted(maps.Keys(m.notes)) {
		ns = append(ns, Note{id, m.notes[id]})
	}
	return ns
}

// ownProp runs random transactions of own SQL and record operations across
// the tenants of an Env and checks every read against the model.
type ownProp struct {
	t     *testing.T
	o     *OwnSQL
	e     *Env
	rng   *rand.Rand
	names []string
	ctx   map[string]context.Context
	model map[string]ownModel
	op    int
	desc  string
}

var ownNoteIDs = []string{"n0", "n1", "n2", "n3", "N1", "n-1", "n.1", "x", "y", "z", "0", "9", "a", "b", "c", "d"}

// testModel: several tenants (one per placement of a mixed Env) insert own
// rows and put records in random interleavings, some transactions rolled
// back or failing on a duplicate key, some tenants offboarded and
// re-created; every read, in the transaction and afterwards, must match
// the model exactly. Tenants share ids, and every body names its owner.
// Tenants whose mode has no own SQL must be refused and keep working
// through records.
func (o *OwnSQL) testModel(t *testing.T, e *Env) {
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (replay with -storetest.seed=%d -run '%s')", seed, seed, t.Name())
	p := &ownProp{t: t, o: o, e: e, rng: rand.New(rand.NewPCG(uint64(seed), 0x0550)),
		names: tenantNames(max(4, len(e.places))), ctx: map[string]context.Context{}, model: map[string]ownModel{}}
	for _, name := range p.names {
		p.ctx[name] = o.tenant(t, e, name)
		p.model[name] = ownModel{notes: map[string]string{}, recs: map[string]string{}}
	}
	for p.op < max(*opsFlag/10, 50) {
		p.step()
	}
	for _, name := range p.names {
		p.desc = "final state of " + name
		p.check(name)
	}
}

func (p *ownProp) fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("op %d, %s: %s", p.op, p.desc, fmt.Sprintf(format, args...))
}

// check compares a tenant's committed state with the model.
func (p *ownProp) check(name string) {
	p.t.Helper()
	ctx, m := p.ctx[name], p.model[name]
	if p.o.has(p.e.PlacementOf(name).Mode) {
		if got := p.o.notes(p.t, p.e, ctx); !slices.Equal(got, m.noteList()) && len(got)+len(m.notes) > 0 {
			p.fatalf("%s sees notes %v, model has %v", name, got, m.noteList())
		}
	}
	if err := p.e.Router.ReadTx(ctx, func(tx *store.Tx) error { return p.checkRecs(tx, ctx, name, m) }); err != nil {
		p.fatalf("%v", err)
	}
}

func (p *ownProp) checkRecs(tx *store.Tx, ctx context.Context, name string, m ownModel) error {
	page, err := tx.List(ctx, "notes", store.ListOptions{Limit: store.MaxLimit})
	if err != nil {
		return err
	}
	got := map[string]string{}
	for _, r := range page.Items {
		got[r.ID] = string(r.Data)
	}
	if !maps.Equal(got, m.recs) {
		p.fatalf("%s lists records %v, model has %v", name, got, m.recs)
	}
	return nil
}

// step runs one transaction.
func (p *ownProp) step() {
	p.op++
	name := p.names[p.rng.IntN(len(p.names))]
	ctx := p.ctx[name]
	if p.rng.IntN(100) == 0 {
		p.desc = "offboard and re-create " + name
		p.e.Offboard(p.t, name)
		p.ctx[name] = p.o.tenant(p.t, p.e, name)
		p.model[name] = ownModel{notes: map[string]string{}, recs: map[string]string{}}
		p.check(name)
		return
	}
	write := p.rng.IntN(100) < 65
	if !p.o.has(p.e.PlacementOf(name).Mode) {
		p.refused(name, ctx, write)
		return
	}
	p.desc = fmt.Sprintf("%s: begin own SQL (write %v)", name, write)
	tx, err := p.e.Router.Begin(ctx, store.TxOptions{SQL: true, ReadOnly: !write})
	if err != nil {
		p.fatalf("%v", err)
	}
	defer func() { _ = tx.Rollback() }()
	h, err := tx.SQL()
	if err != nil {
		p.fatalf("%v", err)
	}
	m := p.model[name].clone()
	for n := 1 + p.rng.IntN(4); n > 0; n-- {
		if !p.do(tx, h, ctx, name, m, write) {
			return // a statement failed as expected: the transaction is rolled back
		}
	}
	if write && p.rng.IntN(8) == 0 {
		p.desc = "rollback " + name
		if err := tx.Rollback(); err != nil {
			p.fatalf("%v", err)
		}
		return
	}
	p.desc = "commit " + name
	if err := tx.Commit(); err != nil {
		p.fatalf("%v", err)
	}
	p.model[name] = m
}

// do runs one operation in tx, updating m; it reports false when the
// operation failed as the model expects and the transaction must end.
func (p *ownProp) do(tx *store.Tx, h any, ctx context.Context, name string, m ownModel, write bool) bool {
	r := p.rng.IntN(100)
	if !write {
		r = 50 + r/2
	}
	switch {
	case r < 30:
		id := p.noteID(m)
		body := fmt.Sprintf("secret-of-%s/%d", name, p.op)
		_, exists := m.notes[id]
		p.desc = fmt.Sprintf("%s: insert note %s %q (exists %v)", name, id, body, exists)
		err := p.o.Insert(ctx, h, id, body)
		switch {
		case exists && err == nil:
			p.fatalf("a second note with the same id was inserted")
		case exists:
			return false
		case err != nil:
			p.fatalf("%v", err)
		}
		m.notes[id] = body
	case r < 50:
		id := ownNoteIDs[p.rng.IntN(len(ownNoteIDs))]
		data := fmt.Sprintf(`{"owner":"secret-of-%s/","op":%d}`, name, p.op)
		p.desc = fmt.Sprintf("%s: put record %s %s", name, id, data)
		rec, _, err := tx.Put(ctx, "notes", id, []byte(data), store.IfMatch{})
		if err != nil {
			p.fatalf("%v", err)
		}
		m.recs[id] = string(rec.Data)
	case r < 80:
		p.desc = name + ": read notes in the transaction"
		got, err := p.o.sortedNotes(ctx, h)
		if err != nil {
			p.fatalf("%v", err)
		}
		if !slices.Equal(got, m.noteList()) && len(got)+len(m.notes) > 0 {
			p.fatalf("notes %v, model has %v", got, m.noteList())
		}
	default:
		p.desc = name + ": list records in the transaction"
		if err := p.checkRecs(tx, ctx, name, m); err != nil {
			p.fatalf("%v", err)
		}
	}
	return true
}

// noteID mostly picks an id the tenant does not have yet (other tenants
// may), and sometimes one it has.
func (p *ownProp) noteID(m ownModel) string {
	var free []string
	for _, id := range ownNoteIDs {
		if _, ok := m.notes[id]; !ok {
			free = append(free, id)
		}
	}
	if len(free) > 0 && p.rng.IntN(6) != 0 {
		return free[p.rng.IntN(len(free))]
	}
	return ownNoteIDs[p.rng.IntN(len(ownNoteIDs))]
}

// refused checks that a tenant in a mode without own SQL is refused it, and
// runs a records-only transaction instead.
func (p *ownProp) refused(name string, ctx context.Context, write bool) {
	p.desc = name + ": own SQL in mode " + string(p.e.PlacementOf(name).Mode)
	err := sqlRun(p.e, ctx, !write, func(*store.Tx, any) error {
		p.fatalf("the transaction function ran")
		return nil
	})
	if !errors.Is(err, store.ErrIsolationUnsupported) {
		p.fatalf("got %v, want ErrIsolationUnsupported", err)
	}
	m := p.model[name].clone()
	err = p.e.Router.Run(ctx, store.TxOptions{ReadOnly: !write}, func(tx *store.Tx) error {
		if write {
			id := ownNoteIDs[p.rng.IntN(len(ownNoteIDs))]
			rec, _, err := tx.Put(ctx, "notes", id, []byte(fmt.Sprintf(`{"owner":"secret-of-%s/","op":%d}`, name, p.op)), store.IfMatch{})
			if err != nil {
				return err
			}
			m.recs[id] = string(rec.Data)
		}
		return p.checkRecs(tx, ctx, name, m)
	})
	if err != nil {
		p.fatalf("records-only transaction: %v", err)
	}
	p.model[name] = m
}
