package postgres

import (
	"regexp"
	"slices"
	"strconv"
)

// Folded reads.
//
// A read-only transaction that runs only Bulkhead's statements needs no
// statement of its own to set the tenant: each of its reads carries the
// secret setting itself, in one statement,
//
//	SELECT r.* FROM (SELECT pg_catalog.set_config($n+1, $n+2, true) AS s) s
//	CROSS JOIN LATERAL (SELECT q.* FROM (<read>) q WHERE s.s IS NOT NULL OFFSET 0) r
//
// The lateral reference makes PostgreSQL produce s, and so set the
// setting, before it runs the read (OFFSET 0 keeps the read a subquery of
// its own, whose row-level security check is planned with it); were it ever
// to run the read first, the read would see no tenant and return nothing.
// Tables in schema "bulkhead" only (pooled tenants and tenant databases):
// the read names its tables there (qualify).

// foldedReads are the statements that have a folded form.
var foldedReads = func() map[string]bool {
	m := map[string]bool{sqlGet: true, sqlCollections: true, sqlUsageGet: true, sqlUsageCount: true,
		sqlEvents: true, sqlEventOffset: true}
	for _, q := range slices.Concat(listQueries, tokenListQueries) {
		m[q] = true
	}
	return m
}()

var paramRef = regexp.MustCompile(`\$([0-9]+)`)

// fold returns the folded form of read.
func fold(read string) string {
	n := 0
	for _, m := range paramRef.FindAllStringSubmatch(read, -1) {
		if v, _ := strconv.Atoi(m[1]); v > n {
			n = v
		}
	}
	return `SELECT r.* FROM (SELECT pg_catalog.set_config($` + strconv.Itoa(n+1) + `, $` + strconv.Itoa(n+2) + `, true) AS s) s
	CROSS JOIN LATERAL (SELECT q.* FROM (` + qualify(pooledSchema, read) + `) q WHERE s.s IS NOT NULL OFFSET 0) r`
}

// foldName is the prepared name of read's folded form.
func foldName(read string) string {
	if n, ok := foldNames[read]; ok {
		return n
	}
	return hashName("fold", read)
}
