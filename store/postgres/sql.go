package postgres

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
)

// pooledSchema is the schema of the shard database that holds the pooled
// tables, and of each tenant database (database mode) that holds the
// tenant's tables.
const pooledSchema = "bulkhead"

// The policy names Bulkhead gives every table of a unit that the serving
// role may use: a restrictive policy that admits only the rows of the
// transaction's tenant in the unit (see seal.go), and a permissive one,
// USING (true), without which row-level security would admit nothing; a
// permissive policy a team adds therefore widens nothing.
const (
	policyName = "bulkhead_tenant"
	guardName  = "bulkhead_tenant_guard"
)

// recordsDDL creates the records table in schema s (already quoted). The
// layout is SQLite's: tenant_id leads the primary key. data is json, not
// jsonb, so a record reads back byte for byte as it was written; ids and
// collections use the "C" collation, so they sort in byte order.
func recordsDDL(s string) string {
	return `CREATE TABLE IF NOT EXISTS ` + s + `.records (
	tenant_id  text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
	collection text COLLATE "C" NOT NULL,
	id         text COLLATE "C" NOT NULL,
	data       json        NOT NULL,
	version    bigint      NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, collection, id)
)`
}

// ensureSQL creates unit schema s (quoted) with its records, tenant_usage,
// tenant_events, tenant_event_offsets and schema_migrations tables, and lets serving role r (quoted) use the schema.
// It takes the unit's advisory lock first, so concurrent provisioning and
// migrations of one unit queue up.
func ensureSQL(lock int64, s, r string) string {
	return strings.Join([]string{
		`SELECT pg_advisory_xact_lock(` + strconv.FormatInt(lock, 10) + `)`,
		`CREATE SCHEMA IF NOT EXISTS ` + s,
		`REVOKE CREATE ON SCHEMA ` + s + ` FROM PUBLIC`,
		recordsDDL(s),
		usageDDL(s),
		eventsDDL(s),
		`CREATE TABLE IF NOT EXISTS ` + s + `.schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`,
		`REVOKE ALL ON ` + s + `.schema_migrations FROM PUBLIC`,
		`GRANT USAGE ON SCHEMA ` + s + ` TO ` + r,
	}, ";\n")
}

// sqlTables lists the tables of a schema ($1) with what secure needs to
// know: whether they have a tenant_id column, their row-level security
// flags, whether Bulkhead's policies exist and check the sealed tenant
// (earlier versions compared a plain setting), and whether serving role $2
// has all four DML privileges.
const sqlTables = `SELECT c.relname,
	EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped),
	c.relrowsecurity, c.relforcerowsecurity,
	EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = '` + policyName + `'),
	EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = '` + guardName + `'),
	coalesce((SELECT bool_and(CASE p.polname WHEN '` + guardName + `'
			THEN pg_get_expr(p.polqual, p.polrelid) LIKE '%bulkhead.tenant_in(%' AND pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%bulkhead.tenant_in(%'
			ELSE pg_get_expr(p.polqual, p.polrelid) = 'true' AND pg_get_expr(p.polwithcheck, p.polrelid) = 'true' END)
		FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname IN ('` + policyName + `', '` + guardName + `')), false),
	has_table_privilege($2::text, c.oid, 'SELECT') AND has_table_privilege($2::text, c.oid, 'INSERT') AND
	has_table_privilege($2::text, c.oid, 'UPDATE') AND has_table_privilege($2::text, c.oid, 'DELETE')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations'
ORDER BY c.relname`

// Record statements. They name tables unqualified: every transaction sets
// search_path to its unit's schema. Every statement also binds the
// transaction's tenant as $1 (defence in depth beside row-level security).
const (
	sqlGet = `SELECT data, version, created_at, updated_at FROM records
		WHERE tenant_id = $1 AND collection = $2 AND id = $3`
	sqlInsert = `INSERT INTO records (tenant_id, collection, id, data, version, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`
	// sqlUpdateOne fails with division_by_zero when it updates no row, so
	// that a held-back update (deferWrite) fails its batch.
	sqlUpdateOne = `WITH w AS (UPDATE records SET data = $4, version = $5, updated_at = $6
		WHERE tenant_id = $1 AND collection = $2 AND id = $3 AND version = $7 RETURNING 1)
		SELECT 1 / count(*) FROM w`
	sqlDelete = `DELETE FROM records
		WHERE tenant_id = $1 AND collection = $2 AND id = $3`
	sqlCollections = `SELECT collection, count(*) FROM records
		WHERE tenant_id = $1 GROUP BY collection ORDER BY collection`
)

// Bounds of float64 as exact decimals: a decimal at or above overflowAt
// parses (strconv.ParseFloat) to ±Inf with an error, and one at or below
// underflowAt (half the smallest subnormal) to zero. PostgreSQL's float8
// input refuses both, so numberSQL decides them in numeric first.
var (
	overflowAt = func() string { // 2^1024 - 2^970
		a := new(big.Int).Lsh(big.NewInt(1), 1024)
		return a.Sub(a, new(big.Int).Lsh(big.NewInt(1), 970)).String()
	}()
	underflowAt = new(big.Float).SetMantExp(big.NewFloat(1), -1075).Text('f', 1075) // 2^-1075
)

// numberSQL returns an expression that converts t, the text of a JSON
// number, to float8 exactly as strconv.ParseFloat does, or NULL where
// ParseFloat fails (out of range). Exponents of five digits or more are
// decided by their sign alone (numeric cannot hold them).
func numberSQL(t string) string {
	return `CASE
			WHEN ` + t + ` ~ '[eE]-0*[1-9][0-9]{4,}$' THEN 0::float8
			WHEN ` + t + ` ~ '[eE][+]?0*[1-9][0-9]{4,}$' THEN CASE WHEN ` + t + ` ~ '^-?0([.]0*)?[eE]' THEN 0::float8 END
			WHEN abs(` + t + `::numeric) >= ` + overflowAt + ` THEN NULL
			WHEN abs(` + t + `::numeric) <= ` + underflowAt + ` THEN 0::float8
			ELSE ` + t + `::float8 END`
}

// listSQL returns the list statement for a query with n filters. Its
// parameters are $1 tenant, $2 collection, $3 the id to start after ("" for
// the first page), four per filter (field, value as text or NULL, as
// float8 or NULL, as boolean literal or NULL), then the limit. A filter
// matches as store.Filter.Matches does: a string equal to the value, a
// number numerically equal to it (as float64), or the boolean it names;
// anything else (missing, null, object, array) does not match.
func listSQL(n int) string {
	var b strings.Builder
	b.WriteString(`SELECT id, data, version, created_at, updated_at FROM records
		WHERE tenant_id = $1 AND collection = $2 AND id > $3`)
	p := 4
	for range n {
		b.WriteString(`
		AND ` + plainCond(p))
		p += 4
	}
	fmt.Fprintf(&b, `
		ORDER BY id LIMIT $%d`, p)
	return b.String()
}

// plainCond is the condition of one filter whose four parameters start at
// $p (see listSQL).
func plainCond(p int) string {
	field := fmt.Sprintf("$%d::text", p)
	text := "(data ->> " + field + ")"
	return fmt.Sprintf(`CASE json_typeof(data -> %[1]s)
			WHEN 'string' THEN %[2]s = $%[3]d::text
			WHEN 'number' THEN $%[4]d::float8 IS NOT NULL AND %[6]s = $%[4]d::float8
			WHEN 'boolean' THEN %[2]s = $%[5]d::text
			ELSE false END`, field, text, p+1, p+2, p+3, numberSQL(text))
}

// listQueries holds listSQL(n) for n up to store.MaxFilters.
var listQueries = func() []string {
	qs := make([]string, store.MaxFilters+1)
	for n := range qs {
		qs[n] = listSQL(n)
	}
	return qs
}()

func listQuery(n int) string {
	if n < len(listQueries) {
		return listQueries[n]
	}
	return listSQL(n)
}

// filterArgs returns the four parameters of f for listSQL. A value
// PostgreSQL text cannot hold (NUL, invalid UTF-8) equals no stored string,
// so it is sent as NULL.
func filterArgs(f store.Filter) []any {
	var str, num, lit any
	if utf8.ValidString(f.Value) && !strings.ContainsRune(f.Value, 0) {
		str = f.Value
	}
	if n, ok := f.Number(); ok {
		num = n
	}
	if v, ok := f.Bool(); ok {
		lit = strconv.FormatBool(v)
	}
	return []any{f.Field, str, num, lit}
}

// ident quotes a schema, database, table or role name.
func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// literal quotes s as an SQL string literal. It is only ever given tenant
// IDs and identifiers Bulkhead derives or has already quoted, and refuses
// anything else that could end or escape the literal.
func literal(s string) string {
	if strings.ContainsAny(s, "'\\\x00") {
		panic(fmt.Sprintf("postgres: refusing to quote %q as a literal", s))
	}
	return "'" + s + "'"
}
