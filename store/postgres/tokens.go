package postgres

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/store"
)

// Token filters (store.Query.Tokens).
//
// A sealed record's data is an envelope holding the key store.SealedMarker
// and, in store.SealedIndex, the keyed tokens of its fields; an equality
// filter matches it when that array holds one of the filter's tokens as a
// string, and matches a record that is not sealed as before
// (store.Query.Matches).
//
// data is json, so every JSON operator parses the document's text, and an
// envelope's text is some four times the plaintext's: parsing each
// envelope twice (is it sealed? its index) made a token filter over a
// tenant's 100,000 records six times slower than the plaintext filter. The
// statement therefore first asks the text two cheap questions whose "no"
// is exact, and parses only where both say "maybe":
//
//   - is it sealed? Text that begins {"$sealed": is (the first member of an
//     object is a key, and the sealing layer writes the marker first); text
//     that contains neither "$sealed" nor a backslash is not (without an
//     escape, a key's text is the key in quotes); anything else is parsed.
//   - does its index hold a token? Not if the text contains neither a
//     token (LIKE '%token%') nor a backslash, for the same reason.
//
// An index could not help: a record matches by its tokens or, when not
// sealed, by its plaintext, which no index of the table covers, and the
// plaintext filter the token filter is measured against scans the tenant's
// records too (BenchmarkTokenFilter).

// The keys of the envelope's members as SQL literals; the constants need
// no quoting.
const (
	litSealed = `'` + store.SealedMarker + `'`
	litIndex  = `'` + store.SealedIndex + `'`
)

// sealedCond is true when data is a sealed envelope.
const sealedCond = `(starts_with(data::text, '{"` + store.SealedMarker + `":')
			OR (strpos(data::text, '"` + store.SealedMarker + `"') > 0 OR strpos(data::text, E'\\') > 0)
				AND data -> ` + litSealed + ` IS NOT NULL)`

// tokenListSQL is listSQL(n) for a query with tokens: each filter has two
// parameters after its four, its tokens and their LIKE patterns (text[]).
func tokenListSQL(n int) string {
	var b strings.Builder
	b.WriteString(`SELECT id, data, version, created_at, updated_at FROM records
		WHERE tenant_id = $1 AND collection = $2 AND id > $3`)
	p := 4
	for range n {
		fmt.Fprintf(&b, `
		AND CASE WHEN %[1]s
			THEN (strpos(data::text, E'\\') > 0 OR data::text LIKE ANY ($%[4]d::text[]))
				AND EXISTS (SELECT 1 FROM json_array_elements(CASE WHEN json_typeof(data -> %[2]s) = 'array' THEN data -> %[2]s END) e
					WHERE json_typeof(e) = 'string' AND e #>> '{}' = ANY ($%[3]d::text[]))
			ELSE %[5]s END`, sealedCond, litIndex, p+4, p+5, plainCond(p))
		p += 6
	}
	fmt.Fprintf(&b, `
		ORDER BY id LIMIT $%d`, p)
	return b.String()
}

// tokenListQueries holds tokenListSQL(n) at n-1, for n from 1 up to
// store.MaxFilters (a query without filters needs no tokens: listSQL(0)).
var tokenListQueries = func() []string {
	qs := make([]string, store.MaxFilters)
	for i := range qs {
		qs[i] = tokenListSQL(i + 1)
	}
	return qs
}()

// listStatement returns the list statement for q, in tenant, and its
// arguments. q.Tokens must be nil or have one entry per filter.
func listStatement(tenant string, q store.Query) (string, []any) {
	n := len(q.Filters)
	tokens := q.Tokens != nil && n > 0
	args := make([]any, 0, 4+6*n)
	args = append(args, tenant, q.Collection, q.After)
	for i, f := range q.Filters {
		args = append(args, filterArgs(f)...)
		if tokens {
			ts, pats := tokenArgs(q.Tokens[i])
			args = append(args, ts, pats)
		}
	}
	args = append(args, q.Limit)
	switch {
	case !tokens:
		return listQuery(n), args
	case n <= len(tokenListQueries):
		return tokenListQueries[n-1], args
	}
	return tokenListSQL(n), args
}

// tokenArgs returns a filter's tokens and a LIKE pattern for each. A token
// PostgreSQL text cannot hold (invalid UTF-8, NUL) equals no stored string
// and is left out. The slices are never nil (nil would be NULL).
func tokenArgs(tokens []string) (valid, patterns []string) {
	valid, patterns = make([]string, 0, len(tokens)), make([]string, 0, len(tokens))
	for _, t := range tokens {
		if !utf8.ValidString(t) || strings.ContainsRune(t, 0) {
			continue
		}
		valid = append(valid, t)
		patterns = append(patterns, "%"+likeEscaper.Replace(t)+"%")
	}
	return valid, patterns
}

// likeEscaper escapes LIKE's wildcards and its escape character.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
