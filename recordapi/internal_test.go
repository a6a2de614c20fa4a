package recordapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
)

func TestParseIfMatch(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want store.IfMatch
		ok   bool
	}{
		{nil, store.IfMatch{}, true},
		{[]string{`*`}, store.IfMatch{Any: true}, true},
		{[]string{` "7" `}, store.IfMatch{Version: 7}, true},
		{[]string{`"9223372036854775807"`}, store.IfMatch{Version: 9223372036854775807}, true},
		{[]string{`7`}, store.IfMatch{}, false},
		{[]string{`"0"`}, store.IfMatch{}, false},
		{[]string{`"-1"`}, store.IfMatch{}, false},
		{[]string{`"+1"`}, store.IfMatch{}, false},
		{[]string{`""`}, store.IfMatch{}, false},
		{[]string{`"x"`}, store.IfMatch{}, false},
		{[]string{`W/"1"`}, store.IfMatch{}, false},
		{[]string{`"1", "2"`}, store.IfMatch{}, false},
		{[]string{`"1"`, `"2"`}, store.IfMatch{}, false},
		{[]string{`"99999999999999999999"`}, store.IfMatch{}, false},
	} {
		h := http.Header{}
		for _, v := range tc.in {
			h.Add("If-Match", v)
		}
		got, err := parseIfMatch(h)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("If-Match %q: got %+v, %v", tc.in, got, err)
		}
		if err != nil {
			if e, ok := Problem(err); !ok || e.Code != "invalid_if_match" || e.Status != 400 {
				t.Errorf("If-Match %q: error %v", tc.in, err)
			}
		}
	}
}

func TestListOptions(t *testing.T) {
	for _, tc := range []struct {
		q, code string
		limit   int
		filters int
	}{
		{"", "", 0, 0},
		{"limit=10", "", 10, 0},
		{"limit=1000&a=eq.1&b=eq.x", "", 1000, 2},
		{"a=eq.1&a=eq.2", "", 0, 2},
		{"limit=1&limit=2", "invalid_limit", 0, 0},
		{"limit=-1", "invalid_limit", 0, 0},
		{"limit=", "invalid_limit", 0, 0},
		{"cursor=", "invalid_cursor", 0, 0},
		{"cursor=a&cursor=b", "invalid_cursor", 0, 0},
		{"a=1", "invalid_filter", 0, 0},
		{"9a=eq.1", "invalid_filter", 0, 0},
		{"a=eq.1;b=eq.2", "invalid_filter", 0, 0},
		{"a=%zz", "invalid_filter", 0, 0},
		{"a=eq.1&b=eq.1&c=eq.1&d=eq.1&e=eq.1&f=eq.1&g=eq.1&h=eq.1&i=eq.1", "invalid_filter", 0, 0},
	} {
		opts, err := listOptions(tc.q)
		if tc.code == "" {
			if err != nil || opts.Limit != tc.limit || len(opts.Filters) != tc.filters {
				t.Errorf("?%s: %+v, %v", tc.q, opts, err)
			}
			continue
		}
		e, ok := Problem(err)
		if !ok || e.Code != tc.code || e.Status != 400 {
			t.Errorf("?%s: error %v, want %s", tc.q, err, tc.code)
		}
	}
}

// TestEncodePageMatchesMarshal: the record-by-record page encoder writes
// exactly what json.Marshal of the page writes, whatever the page.
func TestEncodePageMatchesMarshal(t *testing.T) {
	at := time.Date(2026, 11, 26, 1, 2, 3, 456789000, time.UTC)
	rec := func(i int, data string) store.Record {
		return store.Record{ID: fmt.Sprintf("r%03d", i), Collection: "c", Data: json.RawMessage(data),
			Version: int64(i + 1), CreatedAt: at, UpdatedAt: at.Add(time.Duration(i) * time.Second)}
	}
	var many []store.Record
	for i := range 3*store.YieldEvery + 5 {
		many = append(many, rec(i, fmt.Sprintf(`{ "n" : %d, "html": "<a href=\"x\">&</a>", "u": "\u2028é" }`, i)))
	}
	pages := map[string]store.Page{
		"nil items":   {},
		"empty":       {Items: []store.Record{}},
		"one":         {Items: []store.Record{rec(0, `{"a":1}`)}, NextCursor: "abc"},
		"many":        {Items: many, NextCursor: "c<>&\"ursor"},
		"exact yield": {Items: many[:store.YieldEvery]},
	}
	for name, p := range pages {
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		var buf bytes.Buffer
		buf.WriteString("left over")
		buf.Reset()
		if err := encodePage(&buf, p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := buf.Bytes(); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	if err := encodePage(new(bytes.Buffer), store.Page{Items: []store.Record{rec(0, `{"a":`)}}); err == nil {
		t.Error("a page with invalid JSON data encoded without error")
	}
}

// TestStoreErrorsAreClientErrors: every sentinel of the table is a 4xx
// with its code, even wrapped, and an answer with a fixed detail says
// nothing of what was wrapped around the sentinel.
func TestStoreErrorsAreClientErrors(t *testing.T) {
	for _, s := range sentinels {
		e, ok := Problem(fmt.Errorf("tenant acme, record r1: %w", s.Err))
		if !ok || e.Code != s.Code || e.Status != s.Status || e.Status < 400 || e.Status >= 500 {
			t.Errorf("%v: got %+v", s.Err, e)
			continue
		}
		if !s.Keep && strings.Contains(e.Detail, "acme") {
			t.Errorf("%v: the detail %q tells what was wrapped", s.Err, e.Detail)
		}
	}
	if _, ok := Problem(fmt.Errorf("open: %w", errors.New("disk on fire"))); ok {
		t.Error("an unknown error was mapped")
	}
}
