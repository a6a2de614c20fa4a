package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
)

// The unforgeable tenant.
//
// Row-level security needs to know the transaction's tenant, and the
// serving role can set any setting whose name it knows (set_config, SET,
// RESET), so a plain setting such as bulkhead.tenant, compared with
// tenant_id by the policies, is forgeable by any SQL the serving role runs.
// Bulkhead keeps the tenant where that SQL can neither read nor write it:
//
//   - Each shard has a secret setting name, "bulkhead.t_" and 32 random hex
//     digits, made once and kept in an owner-only table,
//     bulkhead_secret.setting, in the shard database and in every tenant
//     database (the serving role has no USAGE on schema bulkhead_secret).
//     PostgreSQL lists custom settings in neither SHOW ALL nor pg_settings,
//     and set_config, SET and current_setting need the name: SQL that does
//     not know it cannot read, set, copy or replay the setting.
//   - A transaction begins with one statement (sqlSeal) that sets, local to
//     the transaction, the secret setting to "<unit>:<tenant>", the
//     informational bulkhead.tenant (for column defaults; nothing trusts
//     it) and search_path to the unit (a transaction that runs no team SQL
//     sets the secret setting alone: sqlSealStore). The name travels as a bound
//     parameter, never in a statement's text, so neither pg_stat_activity
//     nor pg_prepared_statements shows it.
//   - Every policy compares tenant_id with bulkhead.tenant_in('<unit>'), a
//     SECURITY DEFINER function owned by the owner role, which returns the
//     tenant of the secret setting if it was set for this unit, and NULL
//     otherwise: no row is visible and no write passes WITH CHECK.
//
// So a statement may change bulkhead.tenant or search_path (nothing
// follows), name another unit's tables (the setting names one unit:
// nothing), or RESET ALL (no tenant: nothing); it cannot name the secret
// setting. tenant_in refers to every object by its schema, so search_path
// cannot redirect it, and the serving role may create no object anywhere
// (CheckServingRole), so nothing can shadow it. It reads the name through
// an IMMUTABLE owner-only function that its cached plan folds into a
// constant, so a check costs a few microseconds and no table read; it runs
// with a search_path of its own, so that the different search_paths of
// schema tenants do not make PostgreSQL plan it again for each.

// secretSchema is the owner-only schema that holds the setting's name.
const secretSchema = "bulkhead_secret"

// secretName matches the secret setting names Bulkhead makes.
var secretName = regexp.MustCompile(`^bulkhead\.t_[0-9a-f]{32}$`)

// secretSQL creates the owner-only schema and table of the secret setting's
// name, and the function that reads it. The name is inserted by
// ensureSecret (shard database) and copySecretSQL (tenant databases).
const secretSQL = `CREATE SCHEMA IF NOT EXISTS bulkhead_secret;
REVOKE ALL ON SCHEMA bulkhead_secret FROM PUBLIC;
CREATE TABLE IF NOT EXISTS bulkhead_secret.setting (
	one  boolean PRIMARY KEY DEFAULT true CHECK (one),
	name text NOT NULL CHECK (name ~ '^bulkhead\.t_[0-9a-f]{32}$')
);
REVOKE ALL ON bulkhead_secret.setting FROM PUBLIC;
CREATE OR REPLACE FUNCTION bulkhead_secret.name() RETURNS text LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE n text;
BEGIN
	SELECT setting.name INTO STRICT n FROM bulkhead_secret.setting;
	RETURN n;
END $f$;
REVOKE ALL ON FUNCTION bulkhead_secret.name() FROM PUBLIC`

// tenantInSQL creates bulkhead.tenant_in in schema "bulkhead" of a
// database, runnable by serving role r (quoted).
func tenantInSQL(r string) string {
	return `CREATE OR REPLACE FUNCTION bulkhead.tenant_in(unit text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER SET search_path = pg_catalog AS $f$
DECLARE v text := pg_catalog.current_setting(bulkhead_secret.name(), true);
BEGIN
	IF pg_catalog.split_part(v, ':', 1) OPERATOR(pg_catalog.=) unit THEN
		RETURN pg_catalog.split_part(v, ':', 2);
	END IF;
	RETURN NULL;
END $f$;
REVOKE ALL ON FUNCTION bulkhead.tenant_in(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bulkhead.tenant_in(text) TO ` + r
}

// sqlSeal starts a tenant transaction: $1 the secret setting's name, $2
// "<unit>:<tenant>", $3 the tenant, $4 the unit's search_path, $5 "on" for
// a read-only transaction ("off" otherwise, which leaves a read-write one
// as it is).
const sqlSeal = `SELECT pg_catalog.set_config($1, $2, true), pg_catalog.set_config('bulkhead.tenant', $3, true),
	pg_catalog.set_config('search_path', $4, true), pg_catalog.set_config('transaction_read_only', $5, true)`

// sqlSealStore starts a transaction that runs only Bulkhead's own
// statements, which bind the tenant, name their tables with the unit
// (qualify) and write nothing in a read-only store.Tx: $1 the secret
// setting's name, $2 "<unit>:<tenant>".
const sqlSealStore = `SELECT pg_catalog.set_config($1, $2, true)`

// sealArgs returns sqlSeal's arguments for tenant in unit.
func (b *Backend) sealArgs(tenant, unit string, write bool) []any {
	ro := "on"
	if write {
		ro = "off"
	}
	return []any{b.secret, unit + ":" + tenant, tenant, unitPath(unit), ro}
}

// tenantCheck is the policy expression of a table with a tenant_id column
// in unit schema s (unquoted): the row's tenant is the transaction's.
func tenantCheck(s string) string {
	return `tenant_id = (SELECT bulkhead.tenant_in(` + literal(s) + `))`
}

// unitCheck is the policy expression of a table without a tenant_id column
// in a schema or database unit s: the transaction is one of the unit's
// tenant.
func unitCheck(s string) string {
	return `(SELECT bulkhead.tenant_in(` + literal(s) + `)) IS NOT NULL`
}

// ensureSecret makes sure the shard database has a secret setting name,
// making one if it has none, and returns the stored name (several
// processes may race to make it; the first one wins and all read it).
func ensureSecret(ctx context.Context, db beginner) (string, error) {
	var name string
	err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("", secretSchema)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, secretSQL); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `SELECT name FROM bulkhead_secret.setting`).Scan(&name)
		if errors.Is(err, pgx.ErrNoRows) {
			var r [16]byte
			if _, err := rand.Read(r[:]); err != nil {
				return err
			}
			name = "bulkhead.t_" + hex.EncodeToString(r[:])
			_, err = tx.Exec(ctx, `INSERT INTO bulkhead_secret.setting (name) VALUES ($1)`, name)
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("set up the secret tenant setting: %w", err)
	}
	if !secretName.MatchString(name) {
		return "", fmt.Errorf("set up the secret tenant setting: bulkhead_secret.setting holds %d characters that are not a name Bulkhead made", len(name))
	}
	return name, nil
}

// copySecretSQL stores the shard's secret setting name ($1) in a tenant
// database (database mode), in a transaction that has run secretSQL.
const copySecretSQL = `INSERT INTO bulkhead_secret.setting (name) VALUES ($1)
	ON CONFLICT (one) DO UPDATE SET name = excluded.name WHERE setting.name IS DISTINCT FROM excluded.name`
