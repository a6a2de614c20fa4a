package server_test

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
)

// What is encrypted at rest: every record's data (its field names and
// values, at any depth). What is not: record ids, collection names,
// versions and times, tenant ids, and the catalog — so these tests put
// their needles in data only, and use a record id as the positive control
// that shows the scan does read the stored records.
const visibleID = "rec-zq-visible"

// writeNeedles gives the tenant records full of needles in two
// collections, replaces some (old versions linger in the WAL and in free
// pages) and deletes one.
func writeNeedles(e *env, tok, id string) {
	e.t.Helper()
	for i := range 12 {
		coll := []string{"ledger", "notes"}[i%2]
		path := fmt.Sprintf("/v1/collections/%s/records/%s-%d", coll, visibleID, i)
		want(e.t, e.req("PUT", path, tok, needleBody(id, i)), 201, "")
		if i%3 == 0 {
			want(e.t, e.req("PUT", path, tok, needleBody(id, i+100)), 200, "")
		}
	}
	want(e.t, e.req("DELETE", "/v1/collections/ledger/records/"+visibleID+"-10", tok, nil), 204, "")
	r := e.req("GET", "/v1/collections/notes/records/"+visibleID+"-1", tok, nil)
	want(e.t, r, 200, "")
	if !strings.Contains(string(r.body), "zq-needle-value-8812-"+id) {
		e.t.Fatalf("the record does not read back: %s", r.body)
	}
}

// TestNoRecordDataInTheClearOnDisk scans every byte of every file of a
// SQLite data dir (catalog, pooled records, tenant files, keys.db, their
// -wal and -shm files) for the needles of records of a pooled and a
// database-mode tenant: while the server runs (WAL files present) and
// after it closed and the WAL was checkpointed. The same load with
// encryption turned off is the control: there the scan finds every
// needle, so a scan that finds none means something.
func TestNoRecordDataInTheClearOnDisk(t *testing.T) {
	for _, encrypted := range []bool{true, false} {
		name := "encrypted"
		if !encrypted {
			name = "control: encryption off"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			e := newEnvIn(t, dir, server.Options{DisableEncryption: !encrypted})
			var ids []string
			for _, mode := range modes {
				id := "vault-" + mode[:2]
				ids = append(ids, id)
				writeNeedles(e, e.tenantWithKey(id, mode), id)
			}
			ns := needles(ids...)
			check := func(when string) {
				t.Helper()
				found, files := scanDir(t, dir, append(ns, visibleID))
				if len(found[visibleID]) == 0 {
					t.Fatalf("%s: no file holds the record ids: the scan missed the records (files %v)", when, files)
				}
				for _, n := range ns {
					switch {
					case encrypted && len(found[n]) > 0:
						t.Errorf("%s: %q is stored in the clear in %v", when, n, found[n])
					case !encrypted && len(found[n]) == 0:
						t.Errorf("%s (control): %q not found in %v: the scan would miss plaintext", when, n, files)
					}
				}
				if encrypted && !slices.Contains(files, "keys.db") {
					t.Errorf("%s: no keys.db among %v", when, files)
				}
			}
			check("server running")
			e.close()
			for _, mode := range modes {
				checkpoint(t, recordFile(dir, "vault-"+mode[:2], mode))
			}
			if encrypted {
				checkpoint(t, filepath.Join(dir, "keys.db"))
			}
			check("server closed, WAL checkpointed")
		})
	}
}

// TestNoRecordDataInTheClearInPostgres dumps, as the superuser, every
// database of a PostgreSQL server's shard (the main one with its pooled
// and schema-mode tenants, and the database-mode tenant's own) with
// pg_dump, and looks for the needles. With encryption off (the control)
// the dump holds every needle.
func TestNoRecordDataInTheClearInPostgres(t *testing.T) {
	if _, err := exec.LookPath("pg_dump"); err != nil {
		t.Skip("pg_dump is not installed")
	}
	for _, encrypted := range []bool{true, false} {
		name := "encrypted"
		if !encrypted {
			name = "control: encryption off"
		}
		t.Run(name, func(t *testing.T) {
			opts, envs := pgOptions(t)
			opts.DisableEncryption = !encrypted
			e := newEnvIn(t, t.TempDir(), opts)
			var ids []string
			for _, mode := range []string{"pooled", "schema", "database"} {
				id := "vault-" + mode[:2]
				ids = append(ids, id)
				writeNeedles(e, e.tenantWithKey(id, mode), id)
			}
			dumps := dumpAll(t, envs[server.MainShard])
			if len(dumps) < 2 {
				t.Fatalf("dumped %d databases: want the shard's and the database-mode tenant's", len(dumps))
			}
			var all strings.Builder
			for db, dump := range dumps {
				if !strings.Contains(dump, visibleID) {
					t.Fatalf("the dump of %s lacks the record ids: it missed the records", db)
				}
				all.WriteString(dump)
			}
			for _, n := range needles(ids...) {
				if got := strings.Contains(all.String(), n); got == encrypted {
					t.Errorf("encrypted=%v: needle %q in the dumps = %v", encrypted, n, got)
				}
			}
		})
	}
}

// dumpAll runs pg_dump as the superuser on every database the test's
// owner role owns and returns the dumps by database.
func dumpAll(t *testing.T, env pgtest.Env) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, env.SuperURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba
		WHERE r.rolname = $1 ORDER BY 1`, env.Owner)
	if err != nil {
		t.Fatal(err)
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	dumps := map[string]string{}
	for _, db := range dbs {
		u, err := url.Parse(env.SuperURL)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + db
		out, err := exec.Command("pg_dump", "--no-owner", "--dbname", u.String()).CombinedOutput()
		if err != nil {
			t.Fatalf("pg_dump %s: %v\n%s", db, err, out)
		}
		dumps[db] = string(out)
	}
	return dumps
}
