package store_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
)

func TestQueryMatchesSealedRecordsByTokensOnly(t *testing.T) {
	sa := store.Query{Filters: []store.Filter{{Field: "s", Value: "a"}}, Tokens: [][]string{{"T1", "T2"}}}
	cases := []struct {
		q    store.Query
		data string
		want bool
	}{
		// Not sealed: the filter decides, tokens are not looked at.
		{sa, `{"s":"a"}`, true},
		{sa, `{"s":"b"}`, false},
		{sa, `{"s":"b","i":["T1"]}`, false},
		// Sealed: the tokens decide, the envelope's other members are not looked at.
		{sa, `{"$sealed":"v1","c":"x","i":["T2"]}`, true},
		{sa, `{"$sealed":"v1","c":"x","i":["T0","T1"]}`, true},
		{sa, `{"$sealed":"v1","c":"x","i":["T3"]}`, false},
		{sa, `{"$sealed":"v1","s":"a","i":[]}`, false},
		{sa, `{"$sealed":null,"s":"a"}`, false},
		{sa, `{"a":1,"$sealed":"v1","i":["T1"]}`, true},
		{sa, `{"$sealed":"v1","i":["\u0054\u0031"]}`, true},
		{sa, `{"$sealed":"v1","i":"T1"}`, false},
		{sa, `{"$sealed":"v1","i":{"k":"T1"}}`, false},
		{sa, `{"$sealed":"v1","i":[["T1"],{"k":"T1"},null,1]}`, false},
		{store.Query{Filters: []store.Filter{{Field: "c", Value: "x"}}, Tokens: [][]string{{"T"}}}, `{"$sealed":"v1","c":"x","i":[]}`, false},
		{store.Query{Filters: []store.Filter{{Field: "i", Value: "T"}}, Tokens: [][]string{{"U"}}}, `{"$sealed":"v1","i":"T"}`, false},
		{store.Query{Filters: []store.Filter{{Field: "i", Value: "T"}}, Tokens: [][]string{{"U"}}}, `{"i":"T"}`, true},
		{store.Query{Filters: []store.Filter{{Field: "n", Value: "1"}}, Tokens: [][]string{{"1"}}}, `{"$sealed":"v1","i":[1]}`, false},
		// Every filter must match; an empty token set matches no sealed record.
		{store.Query{Filters: []store.Filter{{Field: "s", Value: "a"}, {Field: "t", Value: "b"}}, Tokens: [][]string{{"T1"}, {"U1"}}}, `{"$sealed":"v1","i":["T1","U1"]}`, true},
		{store.Query{Filters: []store.Filter{{Field: "s", Value: "a"}, {Field: "t", Value: "b"}}, Tokens: [][]string{{"T1"}, {"U1"}}}, `{"$sealed":"v1","i":["T1"]}`, false},
		{store.Query{Filters: []store.Filter{{Field: "s", Value: "a"}}, Tokens: [][]string{{}}}, `{"$sealed":"v1","i":["T1"]}`, false},
		{store.Query{Filters: []store.Filter{{Field: "s", Value: "a"}}, Tokens: [][]string{{}}}, `{"s":"a"}`, true},
		// Tokens nil: today's semantics, an envelope is a plain object.
		{store.Query{Filters: []store.Filter{{Field: "c", Value: "x"}}}, `{"$sealed":"v1","c":"x","i":[]}`, true},
		{store.Query{Filters: []store.Filter{{Field: "s", Value: "a"}}}, `{"$sealed":"v1","i":["T1"]}`, false},
		// No filters match everything; a token count that does not fit nothing.
		{store.Query{Tokens: [][]string{}}, `{"$sealed":"v1"}`, true},
		{store.Query{Filters: []store.Filter{{Field: "s", Value: "a"}}, Tokens: [][]string{}}, `{"s":"a"}`, false},
		// Not an object: nothing matches.
		{sa, `["$sealed"]`, false},
	}
	for _, c := range cases {
		if got := c.q.Matches(json.RawMessage(c.data)); got != c.want {
			t.Errorf("%+v on %s: %v, want %v", c.q, c.data, got, c.want)
		}
	}
}

func TestQueryCheckTokens(t *testing.T) {
	f := []store.Filter{{Field: "s", Value: "a"}}
	for _, q := range []store.Query{{}, {Filters: f}, {Filters: f, Tokens: [][]string{nil}}, {Tokens: [][]string{}}} {
		if err := q.CheckTokens(); err != nil {
			t.Errorf("%+v: %v", q, err)
		}
	}
	for _, q := range []store.Query{{Filters: f, Tokens: [][]string{}}, {Tokens: [][]string{{"T"}}}} {
		if err := q.CheckTokens(); !errors.Is(err, store.ErrInvalidFilter) {
			t.Errorf("%+v: %v, want ErrInvalidFilter", q, err)
		}
	}
}
