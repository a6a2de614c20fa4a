package server_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/keys"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TestShreddingMakesBackupsUndecryptable: a backup of a SQLite data dir
// (every file, copied while the server runs, after a checkpoint) holds a
// pooled and a database-mode tenant's sealed records. Once the tenants are
// deleted through the API, their keys are destroyed, and what the backup
// holds of them no longer decrypts:
//
//   - with the server's current key store and keyring (their keys are
//     gone: keys.ErrNoKeys);
//   - for the tenant created again with the same id (it has new keys:
//     keys.ErrUndecryptable), through the API too, with the backup's rows
//     put back into the live database;
//   - with the backup's own key store, once the keyring was rotated
//     (POST /v1/admin/keyring/rotate retires the key that wrapped it).
//
// The documented limit, shown here too: the backup's key store opens with
// the keyring as it was before that rotation. A backup that holds the
// keyring file (or a keyring copied at the same time) decrypts everything
// it holds; keep the keyring out of backups, and rotate it after a
// shredding so that the key stores of older backups stop opening with it.
func TestShreddingMakesBackupsUndecryptable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := newEnvIn(t, dir, server.Options{})
	doomed := map[string]string{"doomed-po": "pooled", "doomed-db": "database"}
	toks := map[string]string{}
	for id, mode := range doomed {
		toks[id] = e.tenantWithKey(id, mode)
		writeNeedles(e, toks[id], id)
	}
	keeper := e.tenantWithKey("keeper", "pooled")
	writeNeedles(e, keeper, "keeper")

	// The backup, with the keyring as it was (what an attacker who got
	// both would hold).
	for id, mode := range doomed {
		checkpoint(t, recordFile(dir, id, mode))
	}
	checkpoint(t, filepath.Join(dir, "keys.db"))
	backup := t.TempDir()
	copyDir(t, dir, backup)
	stored := map[string][]rawRecord{}
	for id, mode := range doomed {
		stored[id] = rawRecords(t, recordFile(backup, id, mode), id)
		if len(stored[id]) != 11 {
			t.Fatalf("the backup holds %d records of %s, want 11", len(stored[id]), id)
		}
	}
	// scratch returns a copy of the backup's key store, since opening one
	// with a Manager may write to it.
	scratch := func() string {
		d := t.TempDir()
		copyDir(t, backup, d)
		return filepath.Join(d, "keys.db")
	}
	opens := func(m *keys.Manager, id string) error {
		t.Helper()
		for _, r := range stored[id] {
			pt, err := openWith(t, m, id, r)
			if err != nil {
				return err
			}
			if !strings.Contains(string(pt), "zq-needle-value-8812-"+id) {
				t.Fatalf("%s/%s opened to %q", r.Collection, r.ID, pt)
			}
		}
		return nil
	}
	for id := range doomed {
		if err := opens(keyManager(t, scratch(), filepath.Join(backup, "keyring")), id); err != nil {
			t.Fatalf("before the deletion, the backup does not open (the test is broken): %v", err)
		}
	}

	for id := range doomed {
		want(t, e.req("DELETE", "/v1/admin/tenants/"+id, e.op, nil), 204, "")
	}

	t.Run("the current key store has no keys for them", func(t *testing.T) {
		m := keyManager(t, filepath.Join(dir, "keys.db"), filepath.Join(dir, "keyring"))
		for id := range doomed {
			if _, err := m.Info(ctx, tenant.MustParse(id)); !errors.Is(err, keys.ErrNoKeys) {
				t.Errorf("%s: Info = %v, want ErrNoKeys", id, err)
			}
		}
	})

	t.Run("a tenant created again with the same id cannot read them", func(t *testing.T) {
		for id, mode := range doomed {
			toks[id] = e.tenantWithKey(id, mode)
			// Its first write makes its keys (tenant creation does not).
			want(t, e.req("PUT", "/v1/collections/fresh/records/f1", toks[id], `{"fresh":true}`), 201, "")
		}
		m := keyManager(t, filepath.Join(dir, "keys.db"), filepath.Join(dir, "keyring"))
		for id := range doomed {
			if _, err := m.Info(ctx, tenant.MustParse(id)); err != nil {
				t.Fatalf("%s created again has no keys: %v", id, err)
			}
			if err := opens(m, id); !errors.Is(err, keys.ErrUndecryptable) {
				t.Errorf("%s's new keys open its old records: %v, want ErrUndecryptable", id, err)
			}
		}
		// The backup's rows put back into the live pooled database: the
		// API refuses them rather than decrypt or return them.
		id := "doomed-po"
		db := openSQLite(t, recordFile(dir, id, "pooled"))
		for _, r := range stored[id] {
			if _, err := db.Exec(`INSERT INTO records (tenant_id, collection, id, data, version, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, id, r.Collection, r.ID, r.Data, r.Version, r.CreatedAt, r.UpdatedAt); err != nil {
				t.Fatal(err)
			}
		}
		r := stored[id][0]
		for _, path := range []string{"/v1/collections/" + r.Collection + "/records/" + r.ID, "/v1/collections/" + r.Collection + "/records"} {
			got := e.req("GET", path, toks[id], nil)
			t.Logf("GET %s of a restored row: %d %s", path, got.status, got.body)
			if got.status == 200 || strings.Contains(string(got.body), "zq") {
				t.Errorf("GET %s of a restored row = %d %s", path, got.status, got.body)
			}
		}
	})

	t.Run("the backup's key store opens with the keyring until it is rotated", func(t *testing.T) {
		m := keyManager(t, scratch(), filepath.Join(dir, "keyring"))
		for id := range doomed {
			if err := opens(m, id); err != nil {
				t.Errorf("%s: %v: the backup's key store should still open with the unrotated keyring (the limit this test documents)", id, err)
			}
		}
		r := e.req("POST", "/v1/admin/keyring/rotate", e.op, nil)
		want(t, r, 200, "")
		if rw := r.json(t)["rewrapped"]; rw != float64(3) { // keeper and the two created again
			t.Errorf("rewrapped %v tenant keysets, want 3", rw)
		}
		m = keyManager(t, scratch(), filepath.Join(dir, "keyring"))
		if err := m.CheckKeyring(ctx); !errors.Is(err, keys.ErrWrongKeyring) {
			t.Errorf("the backup's key store with the rotated keyring: CheckKeyring = %v, want ErrWrongKeyring", err)
		}
		for id := range doomed {
			if err := opens(m, id); err == nil {
				t.Errorf("%s: the backup's records open with its key store and the rotated keyring", id)
			}
		}
	})

	t.Run("the documented limit: the backup's key store and the old keyring decrypt", func(t *testing.T) {
		m := keyManager(t, scratch(), filepath.Join(backup, "keyring"))
		for id := range doomed {
			if err := opens(m, id); err != nil {
				t.Errorf("%s: %v", id, err)
			}
		}
	})

	t.Run("the other tenant is untouched", func(t *testing.T) {
		r := e.req("GET", "/v1/collections/notes/records/"+visibleID+"-1", keeper, nil)
		want(t, r, 200, "")
		if !strings.Contains(string(r.body), "zq-needle-value-8812-keeper") {
			t.Errorf("keeper reads %s", r.body)
		}
		if _, err := os.Stat(recordFile(dir, "doomed-db", "database")); err != nil {
			t.Errorf("doomed-db created again has no file: %v", err)
		}
	})
}

// TestMovedEnvelopeDoesNotOpen: whoever can write the database moves a
// sealed record's stored data to another tenant's row, or to another
// record of the same tenant. Neither opens (the ciphertext is bound to
// tenant, collection and record id): the read fails and returns nothing
// of it.
func TestMovedEnvelopeDoesNotOpen(t *testing.T) {
	dir := t.TempDir()
	e := newEnvIn(t, dir, server.Options{})
	toks := map[string]string{}
	for _, id := range []string{"mover-a", "mover-b"} {
		toks[id] = e.tenantWithKey(id, "pooled")
		writeNeedles(e, toks[id], id)
	}
	db := openSQLite(t, filepath.Join(dir, "pooled.db"))
	move := func(fromTenant, fromID, toTenant, toID string) {
		t.Helper()
		res, err := db.Exec(`UPDATE records SET data = (SELECT data FROM records WHERE tenant_id = ? AND collection = 'notes' AND id = ?)
			WHERE tenant_id = ? AND collection = 'notes' AND id = ?`, fromTenant, fromID, toTenant, toID)
		if n, _ := res.RowsAffected(); err != nil || n != 1 {
			t.Fatalf("move: %v (%d rows)", err, n)
		}
	}
	r1, r3 := visibleID+"-1", visibleID+"-3"
	// Across tenants: A's record 1 put in B's row of the same id.
	move("mover-a", r1, "mover-b", r1)
	got := e.req("GET", "/v1/collections/notes/records/"+r1, toks["mover-b"], nil)
	if got.status == 200 || strings.Contains(string(got.body), "zq") {
		t.Errorf("another tenant's envelope opens: %d %s", got.status, got.body)
	}
	// Within one tenant: record 3's envelope put in record 5's row.
	move("mover-a", r3, "mover-a", visibleID+"-5")
	got = e.req("GET", "/v1/collections/notes/records/"+visibleID+"-5", toks["mover-a"], nil)
	if got.status == 200 || strings.Contains(string(got.body), "zq") {
		t.Errorf("a record's envelope moved to another record opens: %d %s", got.status, got.body)
	}
	// The rows not touched still read.
	want(t, e.req("GET", "/v1/collections/notes/records/"+visibleID+"-7", toks["mover-b"], nil), 200, "")
	want(t, e.req("GET", "/v1/collections/notes/records/"+r3, toks["mover-a"], nil), 200, "")
}
