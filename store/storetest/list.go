package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
)

// byteOrderIDs are record ids whose byte order differs from case-folded or
// natural order.
var byteOrderIDs = []string{
	"b", "B", "a", "A", "a.1", "a-1", "a_1", "a~1", "a1", "aa", "Aa", "aA", "0", "10", "9", "~", "-", ".", "_",
	"z", "Z", "zz", "x-y.z_w~v", "0a", strings.Repeat("m", 128), "m",
}

func testListPaging(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	other := e.Tenant(t, "other")
	for _, id := range byteOrderIDs {
		e.mustPut(t, ctx, "items", id, fmt.Sprintf(`{"id":%q}`, id))
		e.mustPut(t, other, "items", id, `{"other":true}`) // the same ids, in the shared key space
	}
	e.mustPut(t, ctx, "itemz", "zzz", `{}`) // a neighbouring collection
	want := slices.Clone(byteOrderIDs)
	sort.Strings(want)
	for _, limit := range []int{1, 2, 7, len(want) - 1, len(want), len(want) + 1, store.MaxLimit} {
		got := ids(e.listAll(t, ctx, "items", limit, nil))
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: listed %q\nwant %q (ascending byte order, this tenant and collection only)", limit, got, want)
		}
	}
	page, err := e.list(ctx, "items", store.ListOptions{})
	if err != nil || len(page.Items) != len(want) || page.NextCursor != "" {
		t.Fatalf("default limit: %d items, cursor %q, err %v", len(page.Items), page.NextCursor, err)
	}
	for _, r := range page.Items {
		if string(r.Data) != fmt.Sprintf(`{"id":%q}`, r.ID) || r.Collection != "items" || r.Version != 1 {
			t.Fatalf("listed record %+v does not match what was put", r)
		}
	}
	empty, err := e.list(ctx, "nothing", store.ListOptions{Limit: 3})
	if err != nil || empty.Items == nil || len(empty.Items) != 0 || empty.NextCursor != "" {
		t.Fatalf("empty collection: %+v %v, want no items (non-nil) and no cursor", empty, err)
	}
}

func testListLimits(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	for i := 0; i < 60; i++ {
		e.mustPut(t, ctx, "c", fmt.Sprintf("r%02d", i), `{}`)
	}
	page, err := e.list(ctx, "c", store.ListOptions{})
	if err != nil || len(page.Items) != store.DefaultLimit || page.NextCursor == "" {
		t.Fatalf("default limit: %d items, cursor %q, err %v", len(page.Items), page.NextCursor, err)
	}
	for _, limit := range []int{-1, store.MaxLimit + 1} {
		_, err := e.list(ctx, "c", store.ListOptions{Limit: limit})
		wantErr(t, fmt.Sprintf("limit %d", limit), err, store.ErrInvalidLimit)
	}
	_, err = e.list(ctx, "c", store.ListOptions{Filters: []store.Filter{{Field: "a.b", Value: "1"}}})
	wantErr(t, "filter on a dotted field", err, store.ErrInvalidFilter)
	many := make([]store.Filter, store.MaxFilters+1)
	for i := range many {
		many[i] = store.Filter{Field: fmt.Sprintf("f%d", i), Value: "1"}
	}
	_, err = e.list(ctx, "c", store.ListOptions{Filters: many})
	wantErr(t, "too many filters", err, store.ErrInvalidFilter)
	_, err = e.list(ctx, "C", store.ListOptions{})
	wantErr(t, "invalid collection", err, store.ErrInvalidCollection)
}

// filterRecords are data documents chosen to sit on the edges of
// store.Filter.Matches: types, numeric equality, escapes, unicode.
var filterRecords = []string{
	`{"s":"a"}`, `{"s":"A"}`, `{"s":"é"}`, `{"s":"\u00e9"}`, `{"s":"e\u0301"}`, `{"s":"😀"}`, `{"s":"\ud83d\ude00"}`,
	`{"s":"1"}`, `{"s":"1.0"}`, `{"s":1}`, `{"s":1.0}`, `{"s":1e0}`, `{"s":10E-1}`, `{"s":-0}`, `{"s":0}`, `{"s":-0.0}`,
	`{"s":2}`, `{"s":-1}`, `{"s":1.5}`, `{"s":9007199254740993}`, `{"s":12345678901234567890}`,
	`{"s":3370761022562720000.5}`, `{"s":37644790752627200005}`, `{"s":1e400}`, `{"s":true}`, `{"s":"true"}`, `{"s":false}`, `{"s":"false"}`,
	`{"s":null}`, `{"s":"null"}`, `{}`, `{"s":[1]}`, `{"s":{"s":"a"}}`, `{"S":"a"}`, `{"t":"a"}`, `{"n":{"s":"a"}}`,
	`{"s":""}`, `{"s":" a"}`, `{"s":"a "}`, `{"s":"a\"b"}`, `{"s":"a\\b"}`, `{"s":"\/"}`,
	`{"a\u0062":"k","s":"a","t":1}`, `{"ab":"k","s":1,"t":"x"}`, `{"s":"a","t":true}`, `{"s":"[1]"}`, `{"s":"{}"}`,
	`{"s_2":"v","S2":"w"}`, `{"s":"%61"}`, `{"s":"a","s2":"a"}`,
}

// filterValues are the values each filter is tried with.
var filterValues = []string{
	"a", "A", "é", "e\u0301", "😀", "1", "1.0", "1e0", "01", "+1", ".5", "1.", "0", "-0", "-0.0", "2", "-1", "1.5",
	"9007199254740992", "9007199254740993", "12345678901234567890", "1.2345678901234567e19",
	"3370761022562720000.5", "3.3707610225627203e18", "37644790752627200005", "3.7644790752627204e19", "1e400", "Infinity", "NaN", "0x1p0", "true", "True",
	"false", "null", "", " a", "a ", `a"b`, `a\b`, "x\x00y", "/", "[1]", "{}", "k", "v", "w", "%61",
}

var filterFields = []string{"s", "S", "t", "ab", "n", "s_2", "S2", "missing"}

func testFilters(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	other := e.Tenant(t, "other")
	stored := make([]store.Record, len(filterRecords))
	for i, data := range filterRecords {
		stored[i] = e.mustPut(t, ctx, "f", fmt.Sprintf("r%02d", i), data)
		e.mustPut(t, other, "f", fmt.Sprintf("r%02d", i), `{"s":"a","t":"a","ab":"k","n":1,"S":"a"}`)
	}
	check := func(fs []store.Filter) {
		t.Helper()
		var want []string
		for _, r := range stored {
			if matchesAll(fs, r.Data) {
				want = append(want, r.ID)
			}
		}
		got := ids(e.listAll(t, ctx, "f", store.MaxLimit, fs))
		if !slices.Equal(got, want) {
			t.Errorf("filters %s: listed %s\nwant %s (per store.Filter.Matches)", fmtFilters(fs), show(got, stored), show(want, stored))
		}
	}
	for _, field := range filterFields {
		for _, value := range filterValues {
			check([]store.Filter{{Field: field, Value: value}})
		}
	}
	// Conjunctions, including contradictory and repeated filters.
	check([]store.Filter{{Field: "s", Value: "a"}, {Field: "t", Value: "1"}})
	check([]store.Filter{{Field: "s", Value: "a"}, {Field: "t", Value: "true"}})
	check([]store.Filter{{Field: "s", Value: "a"}, {Field: "s2", Value: "a"}})
	check([]store.Filter{{Field: "s", Value: "1"}, {Field: "s", Value: "1.0"}})
	check([]store.Filter{{Field: "s", Value: "a"}, {Field: "s", Value: "A"}})
	check([]store.Filter{{Field: "ab", Value: "k"}, {Field: "s", Value: "a"}, {Field: "t", Value: "1"}})
	many := make([]store.Filter, store.MaxFilters)
	for i := range many {
		many[i] = store.Filter{Field: "s", Value: "a"}
	}
	check(many)
}

func matchesAll(fs []store.Filter, data json.RawMessage) bool {
	for _, f := range fs {
		if !f.Matches(data) {
			return false
		}
	}
	return true
}

func fmtFilters(fs []store.Filter) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = fmt.Sprintf("%s=eq.%q", f.Field, f.Value)
	}
	return strings.Join(parts, "&")
}

// show renders ids with their data, for failure messages.
func show(ids []string, recs []store.Record) string {
	data := map[string]string{}
	for _, r := range recs {
		data[r.ID] = string(r.Data)
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = id + ":" + data[id]
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func testFilteredPaging(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	var want []string
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("r%02d", i)
		color := []string{"red", "blue", "green"}[i%3]
		e.mustPut(t, ctx, "c", id, fmt.Sprintf(`{"color":%q,"n":%d}`, color, i%2))
		if color == "red" && i%2 == 0 {
			want = append(want, id)
		}
	}
	fs := []store.Filter{{Field: "color", Value: "red"}, {Field: "n", Value: "0"}}
	for _, limit := range []int{1, 2, 3, len(want), 50} {
		if got := ids(e.listAll(t, ctx, "c", limit, fs)); !slices.Equal(got, want) {
			t.Fatalf("limit %d: %v, want %v", limit, got, want)
		}
	}
	// The filter set is bound as a set: the same filters in another order
	// continue the same list.
	page, err := e.list(ctx, "c", store.ListOptions{Limit: 2, Filters: fs})
	if err != nil {
		t.Fatal(err)
	}
	next, err := e.list(ctx, "c", store.ListOptions{Limit: 2, Cursor: page.NextCursor, Filters: []store.Filter{fs[1], fs[0]}})
	if err != nil || len(next.Items) == 0 || next.Items[0].ID != want[2] {
		t.Fatalf("cursor with reordered filters: %v %v", ids(next.Items), err)
	}
}

func testCursorBinding(t *testing.T, e *Env) {
	a := e.Tenant(t, "tenant-a")
	b := e.Tenant(t, "tenant-b")
	for i := 0; i < 5; i++ {
		e.mustPut(t, a, "c", fmt.Sprintf("r%d", i), `{"k":"v"}`)
		e.mustPut(t, b, "c", fmt.Sprintf("r%d", i), `{"k":"v"}`)
		e.mustPut(t, a, "d", fmt.Sprintf("r%d", i), `{"k":"v"}`)
	}
	fs := []store.Filter{{Field: "k", Value: "v"}}
	page, err := e.list(a, "c", store.ListOptions{Limit: 2, Filters: fs})
	if err != nil || page.NextCursor == "" {
		t.Fatalf("first page: %v, cursor %q", err, page.NextCursor)
	}
	cur := page.NextCursor
	if next, err := e.list(a, "c", store.ListOptions{Limit: 3, Cursor: cur, Filters: fs}); err != nil || len(next.Items) != 3 {
		t.Fatalf("cursor with its own tenant, collection and filter (another limit): %v %v", ids(next.Items), err)
	}
	cases := []struct {
		what string
		run  func() error
	}{
		{"another tenant", func() error {
			_, err := e.list(b, "c", store.ListOptions{Limit: 2, Cursor: cur, Filters: fs})
			return err
		}},
		{"another collection", func() error {
			_, err := e.list(a, "d", store.ListOptions{Limit: 2, Cursor: cur, Filters: fs})
			return err
		}},
		{"no filter", func() error {
			_, err := e.list(a, "c", store.ListOptions{Limit: 2, Cursor: cur})
			return err
		}},
		{"another filter value", func() error {
			_, err := e.list(a, "c", store.ListOptions{Limit: 2, Cursor: cur, Filters: []store.Filter{{Field: "k", Value: "w"}}})
			return err
		}},
		{"an extra filter", func() error {
			_, err := e.list(a, "c", store.ListOptions{Limit: 2, Cursor: cur, Filters: append(slices.Clone(fs), store.Filter{Field: "x", Value: "1"})})
			return err
		}},
	}
	for _, c := range cases {
		wantErr(t, "cursor used with "+c.what, c.run(), store.ErrInvalidCursor)
	}
}

func testCursorTamper(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	for i := 0; i < 5; i++ {
		e.mustPut(t, ctx, "c", fmt.Sprintf("r%d", i), `{}`)
	}
	page, err := e.list(ctx, "c", store.ListOptions{Limit: 2})
	if err != nil || page.NextCursor == "" {
		t.Fatalf("first page: %v, cursor %q", err, page.NextCursor)
	}
	cur := page.NextCursor
	tampered := []string{".", "x", "x.y", cur + "x", cur[:len(cur)-1], "." + cur, strings.Repeat("a", 2000), strings.Replace(cur, ".", "", 1)}
	for i := range cur {
		if cur[i] == '.' {
			continue
		}
		b := []byte(cur)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		tampered = append(tampered, string(b))
	}
	for _, c := range tampered {
		_, err := e.list(ctx, "c", store.ListOptions{Limit: 2, Cursor: c})
		wantErr(t, fmt.Sprintf("tampered cursor %.40q", c), err, store.ErrInvalidCursor)
	}
}

func testCollections(t *testing.T, e *Env) {
	ctx := e.Tenant(t, "acme")
	other := e.Tenant(t, "other")
	get := func(name string) []store.Collection {
		t.Helper()
		c := ctx
		if name == "other" {
			c = other
		}
		var cs []store.Collection
		if err := e.Router.ReadTx(c, func(tx *store.Tx) error {
			var err error
			cs, err = tx.Collections(c)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return cs
	}
	if cs := get("acme"); cs == nil || len(cs) != 0 {
		t.Fatalf("new tenant's collections: %#v, want empty (non-nil)", cs)
	}
	for i := 0; i < 3; i++ {
		e.mustPut(t, ctx, "zeta", fmt.Sprintf("r%d", i), `{}`)
	}
	e.mustPut(t, ctx, "alpha", "r", `{}`)
	e.mustPut(t, ctx, "alpha_2", "r", `{}`)
	e.mustPut(t, ctx, "alpha2", "r", `{}`)
	for i := 0; i < 4; i++ {
		e.mustPut(t, other, "alpha", fmt.Sprintf("o%d", i), `{}`)
		e.mustPut(t, other, "secret", fmt.Sprintf("o%d", i), `{}`)
	}
	want := []store.Collection{{Name: "alpha", Records: 1}, {Name: "alpha2", Records: 1}, {Name: "alpha_2", Records: 1}, {Name: "zeta", Records: 3}}
	if got := get("acme"); !slices.Equal(got, want) {
		t.Fatalf("collections %v, want %v (by name, this tenant's records only)", got, want)
	}
	if err := e.del(ctx, "alpha", "r", store.IfMatch{}); err != nil {
		t.Fatal(err)
	}
	want = want[1:]
	if got := get("acme"); !slices.Equal(got, want) {
		t.Fatalf("after emptying alpha: %v, want %v", got, want)
	}
	if got := get("other"); !slices.Equal(got, []store.Collection{{Name: "alpha", Records: 4}, {Name: "secret", Records: 4}}) {
		t.Fatalf("other tenant's collections: %v", got)
	}
}
