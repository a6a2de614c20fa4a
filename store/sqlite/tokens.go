package sqlite

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/store"
)

// Token filters (store.Query.Tokens).
//
// A sealed record's data is an envelope holding the key store.SealedMarker
// and, in store.SealedIndex, the keyed tokens of its fields; an equality
// filter matches it when that array holds one of the filter's tokens, and
// matches a record that is not sealed as before (store.Query.Matches).

// Paths of the envelope's members. The constants need no escaping inside
// the quotes.
const (
	pathSealed = `'$."` + store.SealedMarker + `"'`
	pathIndex  = `'$."` + store.SealedIndex + `"'`
)

// tokenListSQL is listSQL(n) for a query with tokens: each filter has a
// fifth parameter, after its four, the JSON array of its tokens. A sealed
// record matches the filter when its index is an array holding one of the
// tokens as a string; any other record as in listSQL.
func tokenListSQL(n int) string {
	var b strings.Builder
	b.WriteString(`SELECT id, data, version, created_at, updated_at FROM records
		WHERE tenant_id = ?1 AND collection = ?2 AND id > ?3`)
	p := 4
	for range n {
		fmt.Fprintf(&b, `
		AND CASE WHEN json_type(data, %[1]s) IS NOT NULL
			THEN json_type(data, %[2]s) = 'array' AND EXISTS (SELECT 1 FROM json_each(data, %[2]s) e
				WHERE e.type = 'text' AND e.value IN (SELECT value FROM json_each(?%[3]d)))
			ELSE %[4]s END`, pathSealed, pathIndex, p+4, plainCond(p))
		p += 5
	}
	fmt.Fprintf(&b, `
		ORDER BY id LIMIT ?%d`, p)
	return b.String()
}

// tokenListQueries holds tokenListSQL(n) for n up to store.MaxFilters.
var tokenListQueries = func() []string {
	qs := make([]string, store.MaxFilters+1)
	for n := range qs {
		qs[n] = tokenListSQL(n)
	}
	return qs
}()

// listStatement returns the list statement for q, in tenant, and its
// arguments. q.Tokens must be nil or have one entry per filter.
func listStatement(tenant string, q store.Query) (string, []any) {
	n := len(q.Filters)
	args := make([]any, 0, 4+5*n)
	args = append(args, tenant, q.Collection, q.After)
	for i, f := range q.Filters {
		args = append(args, filterArgs(f)...)
		if q.Tokens != nil {
			args = append(args, tokensArg(q.Tokens[i]))
		}
	}
	args = append(args, q.Limit)
	if q.Tokens == nil {
		return listQuery(n), args
	}
	if n < len(tokenListQueries) {
		return tokenListQueries[n], args
	}
	return tokenListSQL(n), args
}

// tokensArg is the JSON array of tokens. A token that is not valid UTF-8
// can equal no stored string (stored data is valid UTF-8), and json.Marshal
// would replace its invalid bytes: it is left out.
func tokensArg(tokens []string) string {
	valid := make([]string, 0, len(tokens))
	for _, t := range tokens {
		if utf8.ValidString(t) {
			valid = append(valid, t)
		}
	}
	b, _ := json.Marshal(valid) // strings always marshal
	return string(b)
}
