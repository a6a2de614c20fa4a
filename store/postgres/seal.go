package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// The unforgeable tenant.
//
// Row-level security needs to know the transaction's tenant, and the
// serving role can set any setting whose name it knows (set_config, SET,
// RESET), so a plain setting such as bulkhead.tenant that policies compare
// tenant_id with is forgeable by any SQL the serving role runs. Bulkhead
// keeps the tenant where that SQL can neither read nor write it:
//
//   - Each database holding tenant tables has an owner-only schema
//     bulkhead_secret (the serving role has no USAGE on it) with the shard's
//     key K and the name of a secret setting, "bulkhead.t_" followed by 32
//     hex digits of HMAC(K, "setting"). PostgreSQL lists custom settings in
//     neither SHOW ALL nor pg_settings, so SQL that does not know the name
//     cannot read, set or copy the setting; RESET ALL clears it, and then
//     nothing is visible.
//   - A transaction begins with bulkhead.enter(tenant, unit, proof, ro), a
//     SECURITY DEFINER function owned by the owner role. proof is
//     HMAC(K, "enter/<tenant>/<unit>/<backend pid>"), computed here and sent
//     as a bound parameter, so SQL never sees it, and it opens one tenant in
//     one unit on one connection; enter refuses a wrong proof. It then sets,
//     local to the transaction, the secret setting to "<unit>:<tenant>",
//     the informational bulkhead.tenant (for column defaults; nothing trusts
//     it) and search_path to the unit.
//   - Every policy compares tenant_id with bulkhead.tenant_in('<unit>'),
//     another SECURITY DEFINER function, which returns the tenant of the
//     secret setting if it was entered for this unit, and NULL otherwise:
//     no row is visible and no write passes WITH CHECK.
//
// So a statement may change bulkhead.tenant or search_path (nothing
// follows), name another unit's tables (the setting names one unit:
// nothing), or RESET ALL (no tenant: nothing); it cannot name the secret
// setting. Both functions refer to every object by its schema, so
// search_path cannot redirect them, and the serving role may create no
// object anywhere (CheckServingRole), so nothing can shadow them. The
// setting's name and the key are read once per session by IMMUTABLE
// owner-only functions that the functions' cached plans fold into
// constants, so checking the tenant costs about a microsecond and no table
// read.

// secretSchema is the owner-only schema that holds the key.
const secretSchema = "bulkhead_secret"

// sealKey is a shard's key: K, and K padded to SHA-256's block and XORed
// with HMAC's inner and outer pads, which the SQL functions use to compute
// HMAC-SHA256 with pg_catalog.sha256 alone.
type sealKey struct {
	k            []byte
	ipad, opad   []byte // 64 bytes each
	setting      string // the secret setting's name
	loadedFromDB bool
}

func newSealKey(k []byte) sealKey {
	ipad, opad := make([]byte, sha256.BlockSize), make([]byte, sha256.BlockSize)
	copy(ipad, k)
	copy(opad, k)
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte("setting"))
	return sealKey{k: k, ipad: ipad, opad: opad, setting: "bulkhead.t_" + hex.EncodeToString(m.Sum(nil))[:32]}
}

// proof is what enter checks before it seals tenant in unit on the backend
// with process id pid.
func (s sealKey) proof(tenant, unit string, pid uint32) string {
	m := hmac.New(sha256.New, s.k)
	m.Write([]byte("enter/" + tenant + "/" + unit + "/" + strconv.FormatUint(uint64(pid), 10)))
	return hex.EncodeToString(m.Sum(nil))
}

// hmacSQL is HMAC-SHA256 of the text expression msg under the shard key, in
// SQL with every name qualified.
func hmacSQL(msg string) string {
	return `pg_catalog.encode(pg_catalog.sha256(bulkhead_secret.opad() OPERATOR(pg_catalog.||) pg_catalog.sha256(bulkhead_secret.ipad() OPERATOR(pg_catalog.||) pg_catalog.convert_to(` + msg + `, 'UTF8'))), 'hex')`
}

// secretSQL creates the key's schema and table (owner only) and the
// functions that read it. The key itself is inserted by ensureKey.
const secretSQL = `CREATE SCHEMA IF NOT EXISTS bulkhead_secret;
REVOKE ALL ON SCHEMA bulkhead_secret FROM PUBLIC;
CREATE TABLE IF NOT EXISTS bulkhead_secret.key (
	one     boolean PRIMARY KEY DEFAULT true CHECK (one),
	ipad    bytea NOT NULL,
	opad    bytea NOT NULL,
	setting text  NOT NULL
);
REVOKE ALL ON bulkhead_secret.key FROM PUBLIC;
CREATE OR REPLACE FUNCTION bulkhead_secret.ipad() RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE k bytea;
BEGIN
	SELECT key.ipad INTO STRICT k FROM bulkhead_secret.key;
	RETURN k;
END $f$;
CREATE OR REPLACE FUNCTION bulkhead_secret.opad() RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE k bytea;
BEGIN
	SELECT key.opad INTO STRICT k FROM bulkhead_secret.key;
	RETURN k;
END $f$;
CREATE OR REPLACE FUNCTION bulkhead_secret.setting() RETURNS text LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE n text;
BEGIN
	SELECT key.setting INTO STRICT n FROM bulkhead_secret.key;
	RETURN n;
END $f$;
REVOKE ALL ON FUNCTION bulkhead_secret.ipad(), bulkhead_secret.opad(), bulkhead_secret.setting() FROM PUBLIC`

// sealFuncsSQL creates bulkhead.enter and bulkhead.tenant_in in schema
// "bulkhead" of a database, runnable by serving role r (quoted).
func sealFuncsSQL(r string) string {
	return `CREATE OR REPLACE FUNCTION bulkhead.enter(tenant text, unit text, proof text, read_only boolean) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER AS $f$
BEGIN
	IF proof IS NULL OR tenant IS NULL OR unit IS NULL OR proof OPERATOR(pg_catalog.<>) ` +
		hmacSQL(`'enter/' OPERATOR(pg_catalog.||) tenant OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) unit OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) pg_catalog.pg_backend_pid()::text`) + ` THEN
		RAISE EXCEPTION 'bulkhead: refusing to enter tenant %: the proof does not verify', tenant USING ERRCODE = '42501';
	END IF;
	PERFORM pg_catalog.set_config(bulkhead_secret.setting(), unit OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) tenant, true),
		pg_catalog.set_config('bulkhead.tenant', tenant, true),
		pg_catalog.set_config('search_path', pg_catalog.quote_ident(unit), true);
	IF read_only THEN
		PERFORM pg_catalog.set_config('transaction_read_only', 'on', true);
	END IF;
END $f$;
CREATE OR REPLACE FUNCTION bulkhead.tenant_in(unit text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER AS $f$
DECLARE v text := pg_catalog.current_setting(bulkhead_secret.setting(), true);
BEGIN
	IF pg_catalog.split_part(v, ':', 1) OPERATOR(pg_catalog.=) unit THEN
		RETURN pg_catalog.split_part(v, ':', 2);
	END IF;
	RETURN NULL;
END $f$;
REVOKE ALL ON FUNCTION bulkhead.enter(text, text, text, boolean), bulkhead.tenant_in(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bulkhead.enter(text, text, text, boolean), bulkhead.tenant_in(text) TO ` + r
}

// tenantCheck is the policy expression of a table with a tenant_id column
// in unit schema s (unquoted): the row's tenant is the sealed tenant.
func tenantCheck(s string) string {
	return `tenant_id = (SELECT bulkhead.tenant_in(` + literal(s) + `))`
}

// unitCheck is the policy expression of a table without a tenant_id column
// in a schema or database unit s: the transaction is sealed for s.
func unitCheck(s string) string {
	return `(SELECT bulkhead.tenant_in(` + literal(s) + `)) IS NOT NULL`
}

// ensureKey makes sure the shard database has a key, creating one if it
// has none, and returns the stored key (several processes may race to
// create it; the first one wins and all read it).
func ensureKey(ctx context.Context, db beginner) (sealKey, error) {
	var key sealKey
	err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("", secretSchema)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, secretSQL); err != nil {
			return err
		}
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return err
		}
		var ipad, opad []byte
		err := tx.QueryRow(ctx, `SELECT ipad, opad FROM bulkhead_secret.key`).Scan(&ipad, &opad)
		if errors.Is(err, pgx.ErrNoRows) {
			fresh := newSealKey(k)
			_, err = tx.Exec(ctx, `INSERT INTO bulkhead_secret.key (ipad, opad, setting) VALUES ($1, $2, $3)`, fresh.ipad, fresh.opad, fresh.setting)
			key = fresh
			return err
		}
		if err != nil {
			return err
		}
		key, err = keyFromPads(ipad, opad)
		return err
	})
	if err != nil {
		return sealKey{}, fmt.Errorf("set up the tenant seal key: %w", err)
	}
	return key, nil
}

// keyFromPads recovers K from its stored inner pad.
func keyFromPads(ipad, opad []byte) (sealKey, error) {
	if len(ipad) != sha256.BlockSize || len(opad) != sha256.BlockSize {
		return sealKey{}, errors.New("bulkhead_secret.key holds a key of the wrong size")
	}
	k := make([]byte, 32)
	for i := range k {
		k[i] = ipad[i] ^ 0x36
	}
	for i := 32; i < sha256.BlockSize; i++ {
		if ipad[i] != 0x36 || opad[i] != 0x5c || opad[i-32]^0x5c != k[i-32] {
			return sealKey{}, errors.New("bulkhead_secret.key is not a key Bulkhead wrote")
		}
	}
	s := newSealKey(k)
	s.loadedFromDB = true
	return s, nil
}

// copyKeySQL stores key in a tenant database (database mode) in a
// transaction that has run secretSQL; it does nothing if the database
// already has it.
const copyKeySQL = `INSERT INTO bulkhead_secret.key (ipad, opad, setting) VALUES ($1, $2, $3)
	ON CONFLICT (one) DO UPDATE SET ipad = excluded.ipad, opad = excluded.opad, setting = excluded.setting
	WHERE (key.ipad, key.opad, key.setting) IS DISTINCT FROM (excluded.ipad, excluded.opad, excluded.setting)`
