// Package sqlrebind translates queries written once for SQLite (`?`
// placeholders, unqualified table names) into PostgreSQL (`$n`, tables
// qualified with a schema), caching each translation. The catalog and the
// audit log share it so that one implementation serves both databases.
package sqlrebind

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Rebinder translates queries for PostgreSQL. It is safe for concurrent use.
type Rebinder struct {
	tables *regexp.Regexp // table names to qualify, as whole words
	schema string
	cache  sync.Map // query → translation
}

// New returns a Rebinder that qualifies tables with schema.
func New(schema string, tables ...string) *Rebinder {
	quoted := make([]string, len(tables))
	for i, t := range tables {
		quoted[i] = regexp.QuoteMeta(t)
	}
	return &Rebinder{tables: regexp.MustCompile(`\b(` + strings.Join(quoted, "|") + `)\b`), schema: schema}
}

// Q returns query with the tables qualified and each `?` replaced by `$n`.
// Queries must not hold a `?` inside a string literal.
func (r *Rebinder) Q(query string) string {
	if v, ok := r.cache.Load(query); ok {
		return v.(string)
	}
	s := r.tables.ReplaceAllString(query, r.schema+".$1")
	var b strings.Builder
	n := 0
	for _, c := range s {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	r.cache.Store(query, b.String())
	return b.String()
}
