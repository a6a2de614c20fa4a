package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
)

// modelRec is a record as the model expects it.
type modelRec struct {
	data             string // normalized
	version          int64
	created, updated time.Time
}

// tenantModel is one tenant's expected data: collection → id → record.
type tenantModel map[string]map[string]modelRec

func (m tenantModel) clone() tenantModel {
	c := make(tenantModel, len(m))
	for coll, recs := range m {
		c[coll] = maps.Clone(recs)
	}
	return c
}

func (m tenantModel) put(coll string, r store.Record) {
	if m[coll] == nil {
		m[coll] = map[string]modelRec{}
	}
	m[coll][r.ID] = modelRec{data: string(r.Data), version: r.Version, created: r.CreatedAt, updated: r.UpdatedAt}
}

// prop runs random operations across tenants through the Router and checks
// every result against the model.
type prop struct {
	t       *testing.T
	e       *Env
	rng     *rand.Rand
	names   []string
	ctx     map[string]context.Context
	model   map[string]tenantModel
	created map[string][]string // ids made by Create, per tenant, in order
	op      int
	desc    string // the operation being checked, for failure messages
}

var (
	propCollections = []string{"notes", "tasks", "t2"}
	propIDs         = []string{"a", "A", "b", "a.1", "a-1", "a_1", "a~1", "0", "9", "z", "Zz", "m"}
	propFilters     = map[string][]string{
		"n":       {"0", "1", "1.0", "-0", "2", "1.5", "true", "null", "01"},
		"s":       {"x", "y", "é", "1", "true", "", "X"},
		"b":       {"true", "false"},
		"nested":  {"x", "1"},
		"missing": {"x"},
	}
	propFilterFields = []string{"n", "s", "b", "owner", "nested", "missing"}
)

// testIsolationProperty is the isolation property test: a seeded random
// sequence of transactions (put, create, get, list with filters and paging,
// delete, collections; some rolled back; occasional offboarding) across four
// tenants that share ids and collections, checked against an in-memory
// model. Every record carries its owner, so a record of another tenant is
// caught even where the model would not notice.
func testIsolationProperty(t *testing.T, e *Env) {
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (replay with -storetest.seed=%d -run '%s')", seed, seed, t.Name())
	p := &prop{
		t:       t,
		e:       e,
		rng:     rand.New(rand.NewPCG(uint64(seed), 0x5eed)),
		names:   tenantNames(max(4, len(e.places))),
		ctx:     map[string]context.Context{},
		model:   map[string]tenantModel{},
		created: map[string][]string{},
	}
	for _, name := range p.names {
		p.ctx[name] = e.Tenant(t, name)
		p.model[name] = tenantModel{}
	}
	for p.op < *opsFlag {
		p.step()
	}
	p.checkAll()
}

func (p *prop) fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("op %d, %s: %s", p.op, p.desc, fmt.Sprintf(format, args...))
}

func (p *prop) pick(xs []string) string { return xs[p.rng.IntN(len(xs))] }

// step runs one transaction of one to four operations.
func (p *prop) step() {
	name := p.pick(p.names)
	ctx := p.ctx[name]
	if p.rng.IntN(300) == 0 {
		p.op++
		p.desc = "offboard and re-provision " + name
		p.e.Offboard(p.t, name)
		p.ctx[name] = p.e.Tenant(p.t, name)
		p.model[name] = tenantModel{}
		p.created[name] = nil
		return
	}
	write := p.rng.IntN(100) < 60
	tx, err := p.e.Router.Begin(ctx, store.TxOptions{ReadOnly: !write})
	if err != nil {
		p.fatalf("begin: %v", err)
	}
	defer func() { _ = tx.Rollback() }()
	m := p.model[name]
	if write {
		m = m.clone()
	}
	for n := 1 + p.rng.IntN(4); n > 0; n-- {
		p.op++
		p.do(tx, ctx, name, m, write)
	}
	if write && p.rng.IntN(10) == 0 {
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

func (p *prop) do(tx *store.Tx, ctx context.Context, name string, m tenantModel, write bool) {
	r := p.rng.IntN(100)
	if !write {
		r = 55 + r*45/100 // reads only: get, list, collections
	}
	switch {
	case r < 30:
		p.put(tx, ctx, name, m)
	case r < 40:
		p.create(tx, ctx, name, m)
	case r < 55:
		p.delete(tx, ctx, name, m)
	case r < 70:
		p.get(tx, ctx, name, m)
	case r < 92:
		p.list(tx, ctx, name, m)
	default:
		p.collections(tx, ctx, name, m)
	}
}

// pickID mostly picks from the shared pool, so tenants collide on ids.
func (p *prop) pickID(name string) string {
	if c := p.created[name]; len(c) > 0 && p.rng.IntN(4) == 0 {
		return c[p.rng.IntN(len(c))]
	}
	return p.pick(propIDs)
}

// genData makes a document with an owner mark and fields on the edges of
// the filter semantics.
func (p *prop) genData(owner string) []byte {
	parts := []string{`"owner":"` + owner + `"`}
	opt := func(field string, values ...string) {
		if i := p.rng.IntN(len(values) + 1); i < len(values) {
			parts = append(parts, `"`+field+`"`+p.pick([]string{":", " : "})+values[i])
		}
	}
	opt("n", `0`, `1`, `1.0`, `-0`, `2`, `1.5`, `"1"`, `true`, `null`, `1e0`)
	opt("s", `"x"`, `"y"`, `"é"`, `"\u00e9"`, `"1"`, `"true"`, `""`, `"X"`)
	opt("b", `true`, `false`, `"true"`)
	opt("nested", `{"s":"x","n":1}`, `["x"]`)
	p.rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
	return []byte("{" + strings.Join(parts, ",") + "}")
}

// checkRec compares a returned record with the model and checks its owner.
func (p *prop) checkRec(name, coll string, got store.Record, want modelRec) {
	p.t.Helper()
	if !(store.Filter{Field: "owner", Value: name}).Matches(got.Data) {
		p.fatalf("tenant %s received another tenant's record %s/%s: %s", name, coll, got.ID, got.Data)
	}
	if got.Collection != coll || string(got.Data) != want.data || got.Version != want.version ||
		!got.CreatedAt.Equal(want.created) || !got.UpdatedAt.Equal(want.updated) {
		p.fatalf("record %s/%s is %+v (data %s), model has %+v", coll, got.ID, got, got.Data, want)
	}
}

func (p *prop) put(tx *store.Tx, ctx context.Context, name string, m tenantModel) {
	coll, id, data := p.pick(propCollections), p.pickID(name), p.genData(name)
	cur, exists := m[coll][id]
	var cond store.IfMatch
	switch k := p.rng.IntN(10); {
	case k < 5:
	case k < 7 && exists:
		cond.Version = cur.version
	case k < 9:
		cond.Version = cur.version + 1 + p.rng.Int64N(2) // wrong, or any version of a missing record
	default:
		cond.Any = true
	}
	p.desc = fmt.Sprintf("%s: put %s/%s %s if-match %+v", name, coll, id, data, cond)
	rec, created, err := tx.Put(ctx, coll, id, data, cond)
	wantVersion := cur.version + 1
	switch {
	case !exists && (cond.Any || cond.Version != 0), exists && cond.Version != 0 && cond.Version != cur.version:
		if !errors.Is(err, store.ErrPrecondition) {
			p.fatalf("got %v, want ErrPrecondition", err)
		}
		return
	case err != nil:
		p.fatalf("%v", err)
	case created != !exists || rec.Version != wantVersion || rec.ID != id || rec.Collection != coll:
		p.fatalf("got %+v created=%v, want version %d created=%v", rec, created, wantVersion, !exists)
	case exists && !rec.CreatedAt.Equal(cur.created), !exists && !rec.CreatedAt.Equal(rec.UpdatedAt):
		p.fatalf("timestamps %v/%v, model created %v", rec.CreatedAt, rec.UpdatedAt, cur.created)
	}
	want, _ := store.NormalizeData(data)
	if string(rec.Data) != string(want) {
		p.fatalf("data %s, want %s", rec.Data, want)
	}
	m.put(coll, rec)
}

func (p *prop) create(tx *store.Tx, ctx context.Context, name string, m tenantModel) {
	coll, data := p.pick(propCollections), p.genData(name)
	p.desc = fmt.Sprintf("%s: create in %s %s", name, coll, data)
	rec, err := tx.Create(ctx, coll, data)
	if err != nil {
		p.fatalf("%v", err)
	}
	if _, dup := m[coll][rec.ID]; dup || rec.Version != 1 {
		p.fatalf("created %+v: id reused or version not 1", rec)
	}
	m.put(coll, rec)
	p.created[name] = append(p.created[name], rec.ID)
}

func (p *prop) delete(tx *store.Tx, ctx context.Context, name string, m tenantModel) {
	coll, id := p.pick(propCollections), p.pickID(name)
	cur, exists := m[coll][id]
	var cond store.IfMatch
	switch k := p.rng.IntN(20); {
	case k < 3 && exists:
		cond.Version = cur.version
	case k < 6:
		cond.Version = cur.version + 1
	}
	p.desc = fmt.Sprintf("%s: delete %s/%s if-match %+v", name, coll, id, cond)
	err := tx.Delete(ctx, coll, id, cond)
	switch {
	case !exists && cond.Version != 0:
		if !errors.Is(err, store.ErrPrecondition) {
			p.fatalf("got %v, want ErrPrecondition (a precondition on a missing record)", err)
		}
	case !exists:
		if !errors.Is(err, store.ErrNotFound) {
			p.fatalf("got %v, want ErrNotFound", err)
		}
	case cond.Version != 0 && cond.Version != cur.version:
		if !errors.Is(err, store.ErrPrecondition) {
			p.fatalf("got %v, want ErrPrecondition", err)
		}
	case err != nil:
		p.fatalf("%v", err)
	default:
		delete(m[coll], id)
	}
}

func (p *prop) get(tx *store.Tx, ctx context.Context, name string, m tenantModel) {
	coll, id := p.pick(propCollections), p.pickID(name)
	p.desc = fmt.Sprintf("%s: get %s/%s", name, coll, id)
	rec, err := tx.Get(ctx, coll, id)
	want, exists := m[coll][id]
	if !exists {
		if !errors.Is(err, store.ErrNotFound) {
			p.fatalf("got %+v (data %s) %v, want ErrNotFound", rec, rec.Data, err)
		}
		return
	}
	if err != nil {
		p.fatalf("%v", err)
	}
	p.checkRec(name, coll, rec, want)
}

func (p *prop) randomFilters() []store.Filter {
	var fs []store.Filter
	for n := []int{0, 0, 0, 1, 1, 1, 2, 3}[p.rng.IntN(8)]; n > 0; n-- {
		field := p.pick(propFilterFields)
		values := propFilters[field]
		if field == "owner" {
			values = p.names
		}
		fs = append(fs, store.Filter{Field: field, Value: p.pick(values)})
	}
	return fs
}

func (p *prop) list(tx *store.Tx, ctx context.Context, name string, m tenantModel) {
	coll, fs := p.pick(propCollections), p.randomFilters()
	limit := []int{0, 1, 2, 3, 5, 50}[p.rng.IntN(6)]
	p.desc = fmt.Sprintf("%s: list %s filters %s limit %d", name, coll, fmtFilters(fs), limit)
	var want []string
	for id, r := range m[coll] {
		if matchesAll(fs, []byte(r.data)) {
			want = append(want, id)
		}
	}
	slices.Sort(want)
	step := limit
	if step == 0 {
		step = store.DefaultLimit
	}
	opts := store.ListOptions{Limit: limit, Filters: fs}
	for pos := 0; ; pos += step {
		page, err := tx.List(ctx, coll, opts)
		if err != nil {
			p.fatalf("page at %d: %v", pos, err)
		}
		end := min(pos+step, len(want))
		if got := ids(page.Items); !slices.Equal(got, want[pos:end]) {
			p.fatalf("page at %d: ids %q, want %q (all matching: %q)", pos, got, want[pos:end], want)
		}
		for _, r := range page.Items {
			p.checkRec(name, coll, r, m[coll][r.ID])
		}
		if (page.NextCursor != "") != (end < len(want)) {
			p.fatalf("page at %d: next cursor %q with %d of %d listed", pos, page.NextCursor, end, len(want))
		}
		if page.NextCursor == "" || p.rng.IntN(5) == 0 {
			return
		}
		opts.Cursor = page.NextCursor
	}
}

func (p *prop) collections(tx *store.Tx, ctx context.Context, name string, m tenantModel) {
	p.desc = name + ": collections"
	got, err := tx.Collections(ctx)
	if err != nil {
		p.fatalf("%v", err)
	}
	var want []store.Collection
	for _, coll := range slices.Sorted(maps.Keys(m)) {
		if n := len(m[coll]); n > 0 {
			want = append(want, store.Collection{Name: coll, Records: int64(n)})
		}
	}
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		p.fatalf("got %v, want %v", got, want)
	}
}

// checkAll compares every tenant's whole state with the model.
func (p *prop) checkAll() {
	for _, name := range p.names {
		ctx := p.ctx[name]
		err := p.e.Router.ReadTx(ctx, func(tx *store.Tx) error {
			p.collections(tx, ctx, name, p.model[name])
			for _, coll := range propCollections {
				p.desc = fmt.Sprintf("%s: final state of %s", name, coll)
				page, err := tx.List(ctx, coll, store.ListOptions{Limit: store.MaxLimit})
				if err != nil {
					return err
				}
				want := slices.Sorted(maps.Keys(p.model[name][coll]))
				if got := ids(page.Items); !slices.Equal(got, want) {
					p.fatalf("ids %q, want %q", got, want)
				}
				for _, r := range page.Items {
					p.checkRec(name, coll, r, p.model[name][coll][r.ID])
				}
			}
			return nil
		})
		if err != nil {
			p.fatalf("%v", err)
		}
	}
}
