package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/bulkhead-dev/bulkhead/server"
)

// TestUpgradeAndRotationOnPostgres: records written on PostgreSQL with
// encryption off (pooled, schema and database tenants) are sealed by the
// seal job when the server restarts with encryption on, and a rotation of
// each tenant then re-seals them; through both, every record reads back
// identical, equality filters keep answering (on records in the clear, on
// sealed ones, and under two index keys mid-rotation), and usage does not
// move.
func TestUpgradeAndRotationOnPostgres(t *testing.T) {
	opts, envs := pgOptions(t)
	opts.DisableEncryption = true
	opts.KeyCacheTTL = rotationTTL
	dir := t.TempDir()
	e := newEnvIn(t, dir, opts)
	tenants := map[string]string{"pg-po": "pooled", "pg-sc": "schema", "pg-db": "database"}
	toks := map[string]string{}
	before := map[string]map[string]json.RawMessage{}
	usage := map[string]any{}
	for id, mode := range tenants {
		toks[id] = e.tenantWithKey(id, mode)
		e.setTier(id, "enterprise")
		e.fill(toks[id], 250, rotateCollections...) // more than one batch of a job
		before[id] = e.apiRecords(toks[id], rotateCollections...)
		u := e.req("GET", "/v1/usage", toks[id], nil)
		want(t, u, 200, "")
		usage[id] = u.json(t)["usage"]
	}
	// Record 7 ({"n":7,...}) is in rotateCollections[7%3].
	filtered := func(id string) {
		t.Helper()
		r := e.req("GET", "/v1/collections/"+rotateCollections[7%3]+"/records?n=eq.7", toks[id], nil)
		want(t, r, 200, "")
		var page struct{ Items []struct{ ID string } }
		if err := json.Unmarshal(r.body, &page); err != nil || len(page.Items) != 1 || page.Items[0].ID != "r00007" {
			t.Fatalf("%s: filter n=eq.7 answered %s", id, r.body)
		}
	}
	for id := range tenants {
		filtered(id)
	}
	e.close()

	opts.DisableEncryption = false
	e = newEnvIn(t, dir, opts)
	admin, err := sql.Open("pgx", envs[server.MainShard].AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		var state string
		err := admin.QueryRowContext(context.Background(),
			`SELECT state FROM bulkhead_keys.key_jobs WHERE body::json->>'kind' = 'seal' ORDER BY body::json->>'created_at' DESC LIMIT 1`).Scan(&state)
		if err != nil {
			t.Fatal(err)
		}
		if state == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the seal job is %s after a minute", state)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var clear int
	if err := admin.QueryRowContext(context.Background(),
		`SELECT count(*) FROM bulkhead.records WHERE tenant_id = 'pg-po' AND left(data::text, 11) <> '{"$sealed":'`).Scan(&clear); err != nil {
		t.Fatal(err)
	}
	if clear != 0 {
		t.Fatalf("%d pooled records still stored in the clear after the seal job", clear)
	}
	check := func(stage string) {
		t.Helper()
		for id := range tenants {
			if after := e.apiRecords(toks[id], rotateCollections...); !reflect.DeepEqual(jsonValues(t, after), jsonValues(t, before[id])) {
				t.Fatalf("%s after %s: records read back differently", id, stage)
			}
			filtered(id)
			u := e.req("GET", "/v1/usage", toks[id], nil)
			want(t, u, 200, "")
			if got := u.json(t)["usage"]; !reflect.DeepEqual(got, usage[id]) {
				t.Errorf("%s after %s: usage %v, before %v", id, stage, got, usage[id])
			}
		}
	}
	check("the seal job")

	jobs := map[string]string{}
	for id := range tenants {
		r := e.req("POST", "/v1/admin/tenants/"+id+"/encryption/rotate", e.op, nil)
		want(t, r, 202, "")
		var started struct{ Job struct{ ID string } }
		if err := json.Unmarshal(r.body, &started); err != nil {
			t.Fatal(err)
		}
		jobs[id] = started.Job.ID
	}
	for id := range tenants {
		filtered(id) // mid-rotation: tokens under the old and the new index key
	}
	for id, job := range jobs {
		if j := e.waitJob(job); j["state"] != "done" || j["resealed"] != float64(250) {
			t.Fatalf("%s: rotation ended %v", id, j)
		}
	}
	check("the rotation")
}
