package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Token filters (store.Query.Tokens) on sealed envelopes, written through
// the backend directly as the store's sealing layer writes them.

// TokenOf is the index token these tests give field=value. Backends compare
// tokens without knowing how they are made, so any fixed string works.
func TokenOf(field, value string) string {
	sum := sha256.Sum256([]byte(field + "\x00" + value))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Envelope returns sealed data: the marker, cipher as the ciphertext and
// index as the index tokens.
func Envelope(cipher string, index ...string) string {
	if index == nil {
		index = []string{}
	}
	b, err := json.Marshal(map[string]any{store.SealedMarker: "v1", store.SealedCipher: cipher, store.SealedIndex: index})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// escapeFirst writes s as a JSON string whose first character is a \u
// escape: the same string, spelt differently.
func escapeFirst(s string) string {
	return fmt.Sprintf(`"\u%04x%s"`, s[0], s[1:])
}

// tokenRecords are the data of the records the token tests list: plaintext
// records (some with fields named like the envelope's members, or holding
// tokens), envelopes, and objects that hold the marker without being well
// formed envelopes. Query.Matches decides which a query selects.
func tokenRecords() []string {
	sa, sb, tx := TokenOf("s", "a"), TokenOf("s", "b"), TokenOf("t", "x")
	return []string{
		`{"s":"a"}`, `{"s":"b"}`, `{"s":1}`, `{"s":"1"}`, `{"s":"a","t":"x"}`, `{}`, `{"s":"%"}`,
		`{"c":"a"}`, `{"i":"a"}`, `{"c":"` + sa + `"}`, `{"i":["` + sa + `"]}`, `{"i":"` + sa + `"}`,
		`{"s":"a","c":"a","i":["` + sa + `","` + tx + `"]}`,
		Envelope("x", sa), Envelope("y", sa, tx), Envelope("z", sb), Envelope("x"), Envelope("a", sb),
		Envelope(sa, sb), Envelope("x", TokenOf("s", "1")), Envelope("x", TokenOf("c", "a"), TokenOf("i", "a")),
		Envelope("x", "%"), Envelope("x", "a_b"), Envelope("x", "axb"), Envelope("x", `a\b`), Envelope("x", "'"),
		Envelope("x", "é"), Envelope("x", "😀"), Envelope("x", sb, sa, tx),
		`{"$sealed":null}`, `{"$sealed":false,"s":"a"}`, `{"$sealed":1,"i":"` + sa + `"}`,
		`{"$sealed":"v1","i":{"k":"` + sa + `"}}`, `{"$sealed":"v1","c":"x","i":[1,null,["` + sa + `"],{"a":"` + sa + `"},"` + tx + `"]}`,
		`{"a":1,"$sealed":"v1","i":["` + sa + `"]}`, `{"\u0024sealed":"v1","i":["` + sa + `"]}`,
		`{"$sealed":"v1","c":"x","i":[` + escapeFirst(sa) + `]}`, `{"$sealed":"v1","s":"a","t":"x"}`,
		`{"$sealed":"v1","c":"x","i":[15,true,null,["x"],{"k":"v"}]}`, `{"s":15,"t":["x"]}`,
	}
}

// tokenQueries are the filter and token sets the tests list with.
func tokenQueries() []store.Query {
	f := func(field, value string) store.Filter { return store.Filter{Field: field, Value: value} }
	sa, tx := TokenOf("s", "a"), TokenOf("t", "x")
	qs := []store.Query{
		{Filters: []store.Filter{f("s", "a")}, Tokens: [][]string{{sa}}},
		{Filters: []store.Filter{f("s", "a")}, Tokens: [][]string{{TokenOf("s", "b"), sa}}},
		{Filters: []store.Filter{f("s", "a")}, Tokens: [][]string{{}}},
		{Filters: []store.Filter{f("s", "a")}, Tokens: [][]string{nil}},
		{Filters: []store.Filter{f("s", "1")}, Tokens: [][]string{{TokenOf("s", "1")}}},
		{Filters: []store.Filter{f("c", "a")}, Tokens: [][]string{{TokenOf("c", "a")}}},
		{Filters: []store.Filter{f("i", "a")}, Tokens: [][]string{{TokenOf("i", "a")}}},
		{Filters: []store.Filter{f("c", sa)}, Tokens: [][]string{{TokenOf("c", sa)}}},
		{Filters: []store.Filter{f("i", sa)}, Tokens: [][]string{{"unknown"}}},
		{Filters: []store.Filter{f("s", "a"), f("t", "x")}, Tokens: [][]string{{sa}, {tx}}},
		{Filters: []store.Filter{f("s", "a"), f("t", "x")}, Tokens: [][]string{{sa}, {}}},
		{Filters: []store.Filter{f("s", "%")}, Tokens: [][]string{{"%"}}},
		{Filters: []store.Filter{f("s", "a_b")}, Tokens: [][]string{{"a_b"}}},
		{Filters: []store.Filter{f("s", "x")}, Tokens: [][]string{{`a\b`, "'", "é"}}},
		{Filters: []store.Filter{f("s", "x")}, Tokens: [][]string{{"😀", "\xff", "a\x00b", ""}}},
		{Filters: []store.Filter{f("s", "15")}, Tokens: [][]string{{"15", "true", "null", `["x"]`, `{"k":"v"}`, "1"}}},
		{Filters: []store.Filter{f("s", "a")}},
		{Filters: []store.Filter{f("c", "a")}},
		{Filters: []store.Filter{f("i", "a")}},
		{Tokens: [][]string{}},
		{},
	}
	many := store.Query{}
	for range store.MaxFilters {
		many.Filters = append(many.Filters, f("s", "a"))
		many.Tokens = append(many.Tokens, []string{sa})
	}
	return append(qs, many)
}

func fmtQuery(q store.Query) string {
	if q.Tokens == nil {
		return fmtFilters(q.Filters) + " (no tokens)"
	}
	return fmt.Sprintf("%s tokens %q", fmtFilters(q.Filters), q.Tokens)
}

// insertDirect writes records of collection coll to tenant name through the
// backend, in one transaction, as the sealing layer's writes reach it.
func (e *Env) insertDirect(t testing.TB, name, coll string, ids, data []string) []store.Record {
	t.Helper()
	ctx := context.Background()
	tx, err := e.Backend.Begin(ctx, tenant.MustParse(name), e.Mode, true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	recs := make([]store.Record, len(ids))
	for i, id := range ids {
		// Compact, as the sealing layer writes envelopes (NormalizeData
		// refuses the envelope's field in a user's data).
		var norm bytes.Buffer
		if err := json.Compact(&norm, []byte(data[i])); err != nil {
			t.Fatalf("record %s: %v", data[i], err)
		}
		recs[i] = store.Record{Collection: coll, ID: id, Data: norm.Bytes(), Version: 1, CreatedAt: now, UpdatedAt: now}
		if err := tx.Insert(ctx, recs[i]); err != nil {
			t.Fatalf("insert %s/%s: %v", coll, id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// listDirect lists q page by page (limit records a page) through the
// backend, in a read-only or a read-write transaction of tenant name.
func (e *Env) listDirect(t testing.TB, name string, q store.Query, limit int, write bool) ([]store.Record, error) {
	t.Helper()
	ctx := context.Background()
	tx, err := e.Backend.Begin(ctx, tenant.MustParse(name), e.Mode, write)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	var all []store.Record
	q.After, q.Limit = "", limit
	for {
		page, err := tx.List(ctx, q)
		if err != nil {
			return nil, err
		}
		if len(page) > limit {
			t.Fatalf("%s: page of %d records, limit %d", fmtQuery(q), len(page), limit)
		}
		all = append(all, page...)
		if len(page) < limit {
			return all, nil
		}
		q.After = page[len(page)-1].ID
	}
}

func testTokenFilters(t *testing.T, e *Env) {
	e.Tenant(t, "acme")
	e.Tenant(t, "other")
	data := tokenRecords()
	keys := make([]string, len(data))
	otherIDs := make([]string, len(data))
	otherData := make([]string, len(data))
	for i, d := range data {
		keys[i], otherIDs[i] = fmt.Sprintf("r%02d", i), fmt.Sprintf("o%02d", i)
		// The other tenant holds the same ids with data of its own, and
		// every record again under ids of its own: the same tokens.
		otherData[i] = strings.Replace(d, "{", `{"owner":"other",`, 1)
		otherData[i] = strings.Replace(otherData[i], ",}", "}", 1)
	}
	stored := e.insertDirect(t, "acme", "sealed", keys, data)
	e.insertDirect(t, "other", "sealed", keys, otherData)
	e.insertDirect(t, "other", "sealed", otherIDs, data)
	e.insertDirect(t, "acme", "sealee", []string{"n"}, []string{Envelope("x", TokenOf("s", "a"))}) // a neighbouring collection

	byID := map[string]store.Record{}
	for _, r := range stored {
		byID[r.ID] = r
	}
	for _, q := range tokenQueries() {
		q.Collection = "sealed"
		var want []string
		for _, r := range stored {
			if q.Matches(r.Data) {
				want = append(want, r.ID)
			}
		}
		for _, limit := range []int{1, 2, 3, store.MaxLimit} {
			for _, write := range []bool{false, true} {
				got, err := e.listDirect(t, "acme", q, limit, write)
				if err != nil {
					t.Fatalf("%s: %v", fmtQuery(q), err)
				}
				for _, r := range got {
					if own, ok := byID[r.ID]; !ok || string(own.Data) != string(r.Data) || r.Collection != "sealed" {
						t.Fatalf("%s: listed %s/%s %s, which is not acme's record", fmtQuery(q), r.Collection, r.ID, r.Data)
					}
				}
				if !slices.Equal(ids(got), want) {
					t.Fatalf("%s, limit %d, write %v: listed %s\nwant %s (per store.Query.Matches)",
						fmtQuery(q), limit, write, show(ids(got), stored), show(want, stored))
				}
			}
		}
	}
}

// A query whose tokens do not have one entry per filter is refused.
func testTokenCountMismatch(t *testing.T, e *Env) {
	e.Tenant(t, "acme")
	e.insertDirect(t, "acme", "sealed", []string{"r"}, []string{Envelope("x", TokenOf("s", "a"))})
	for _, q := range []store.Query{
		{Filters: []store.Filter{{Field: "s", Value: "a"}}, Tokens: [][]string{}},
		{Filters: []store.Filter{{Field: "s", Value: "a"}}, Tokens: [][]string{{"a"}, {"b"}}},
		{Tokens: [][]string{{TokenOf("s", "a")}}},
	} {
		q.Collection = "sealed"
		_, err := e.listDirect(t, "acme", q, 10, false)
		wantErr(t, fmtQuery(q), err, store.ErrInvalidFilter)
	}
}
