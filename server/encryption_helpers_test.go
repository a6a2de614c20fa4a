package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/keys"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Helpers of the encryption tests: they look at what the server stores
// from outside it, as whoever reads its files or databases would.

// needleBody returns a record whose field names and values (a string, a
// number, a nested key and value) are distinctive byte strings: needles
// that must not be found in anything the server stores. Record ids and
// collection names are not encrypted, so they carry no needle.
func needleBody(tenantID string, n int) string {
	return `{"zq_needle_field":"zq-needle-value-8812-` + tenantID + `","amount":7777123.25,` +
		`"nested":{"zq_deep_key":"zq-deep-secret-5150"},"n":` + strconv.Itoa(n) + `}`
}

// needles are what needleBody writes: none may be stored in the clear.
func needles(tenantIDs ...string) []string {
	out := []string{"zq_needle_field", "zq-needle-value-8812", "7777123.25", "zq_deep_key", "zq-deep-secret-5150"}
	for _, id := range tenantIDs {
		out = append(out, "zq-needle-value-8812-"+id)
	}
	return out
}

// scanDir reads every regular file under dir and returns, for each needle
// found, the files that hold it.
func scanDir(t testing.TB, dir string, needles []string) (found map[string][]string, files []string) {
	t.Helper()
	found = map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) { // a -journal or temporary file that came and went
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files = append(files, rel)
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				found[n] = append(found[n], rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found, files
}

// recordFile is the SQLite file holding a tenant's records in a data dir.
func recordFile(dir, id, mode string) string {
	if mode == "database" {
		return filepath.Join(dir, "tenants", tenant.MustParse(id).StorageName()+".db")
	}
	return filepath.Join(dir, "pooled.db")
}

// rawRecord is a row of a records table as stored.
type rawRecord struct {
	Collection, ID, Data string
	Version              int64
	CreatedAt, UpdatedAt int64
}

func openSQLite(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rawRecords reads a tenant's rows straight from a SQLite records file
// (the server's, live or closed, or a copy of it), by collection and id.
func rawRecords(t testing.TB, path, id string) []rawRecord {
	t.Helper()
	db := openSQLite(t, path)
	defer db.Close()
	rows, err := db.Query(`SELECT collection, id, data, version, created_at, updated_at FROM records
		WHERE tenant_id = ? ORDER BY collection, id`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []rawRecord
	for rows.Next() {
		var r rawRecord
		if err := rows.Scan(&r.Collection, &r.ID, &r.Data, &r.Version, &r.CreatedAt, &r.UpdatedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkpoint moves a live SQLite file's WAL into the file and truncates
// the WAL (a consistent point to copy it at).
func checkpoint(t testing.TB, path string) {
	t.Helper()
	db := openSQLite(t, path)
	defer db.Close()
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatalf("checkpoint %s: %v", path, err)
	}
}

// copyDir copies every regular file under src to dst (a backup).
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// envelopeCipher returns the ciphertext of a stored envelope, failing the
// test if data is not one.
func envelopeCipher(t testing.TB, data string) []byte {
	t.Helper()
	var env struct {
		Version string `json:"$sealed"`
		C       string `json:"c"`
	}
	if err := json.Unmarshal([]byte(data), &env); err != nil || env.Version != "v1" {
		t.Fatalf("stored data is not a v1 envelope: %.120s", data)
	}
	ct, err := base64.RawURLEncoding.DecodeString(env.C)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// isSealed reports whether stored data is an envelope.
func isSealed(data string) bool { return strings.HasPrefix(data, `{"$sealed":"v1",`) }

// keyManager is a keys.Manager over a key store file and a keyring file,
// as someone holding both would build it (the key store is opened as is:
// give it a copy to leave the original alone).
func keyManager(t testing.TB, keysDB, keyring string) *keys.Manager {
	t.Helper()
	ring, err := keys.OpenKeyring(keyring)
	if err != nil {
		t.Fatal(err)
	}
	db := openSQLite(t, keysDB)
	st, err := keys.OpenSQLStore(context.Background(), db, false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := keys.New(keys.Config{KMS: ring, KEKURI: ring.URI(), Store: st, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// openWith decrypts a stored record with m's keys for tenant id.
func openWith(t testing.TB, m *keys.Manager, id string, r rawRecord) ([]byte, error) {
	t.Helper()
	ts, err := m.ForTenant(context.Background(), tenant.MustParse(id))
	if err != nil {
		return nil, err
	}
	return ts.Open(r.Collection, r.ID, envelopeCipher(t, r.Data))
}

// waitJob polls GET /v1/admin/jobs/{job} until it is no longer running,
// for at most a minute, and returns it.
func (e *env) waitJob(job string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r := e.req("GET", "/v1/admin/jobs/"+job, e.op, nil)
		want(e.t, r, 200, "")
		j := r.json(e.t)
		if j["state"] != "running" {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s still running after a minute: %s", job, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
