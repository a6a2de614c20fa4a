package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/keys"
	"github.com/bulkhead-dev/bulkhead/server"
)

// rotationTTL is the key cache TTL of the rotation tests: a rotation's
// second pass waits for it, so that it does not wait a minute.
const rotationTTL = 50 * time.Millisecond

// fill writes n records to the tenant, spread over collections, from a
// few clients at once.
func (e *env) fill(tok string, n int, collections ...string) {
	e.t.Helper()
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				path := fmt.Sprintf("%s/v1/collections/%s/records/r%05d", e.http.URL, collections[i%len(collections)], i)
				for {
					req, _ := http.NewRequest("PUT", path, strings.NewReader(fmt.Sprintf(`{"n":%d,"secret":"s-%d","tags":["a","b"]}`, i, i)))
					req.Header.Set("Authorization", "Bearer "+tok)
					res, err := e.http.Client().Do(req)
					if err != nil {
						e.t.Errorf("PUT %s: %v", path, err)
						break
					}
					res.Body.Close()
					if res.StatusCode == http.StatusTooManyRequests { // the tenant's rate limit: wait and retry
						time.Sleep(50 * time.Millisecond)
						continue
					}
					if res.StatusCode != 201 {
						e.t.Errorf("PUT %s: %d", path, res.StatusCode)
					}
					break
				}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if e.t.Failed() {
		e.t.FailNow()
	}
}

// apiRecords reads every record of the tenant's collections through the
// API (list pages), keyed by collection/id.
func (e *env) apiRecords(tok string, collections ...string) map[string]json.RawMessage {
	e.t.Helper()
	out := map[string]json.RawMessage{}
	for _, c := range collections {
		cursor := ""
		for {
			q := url.Values{"limit": {"1000"}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			r := e.req("GET", "/v1/collections/"+c+"/records?"+q.Encode(), tok, nil)
			want(e.t, r, 200, "")
			var p struct {
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
				NextCursor string `json:"next_cursor"`
			}
			var raw struct {
				Items []json.RawMessage `json:"items"`
			}
			if err := json.Unmarshal(r.body, &p); err != nil {
				e.t.Fatal(err)
			}
			if err := json.Unmarshal(r.body, &raw); err != nil {
				e.t.Fatal(err)
			}
			for i, it := range p.Items {
				out[c+"/"+it.ID] = raw.Items[i]
			}
			if p.NextCursor == "" {
				break
			}
			cursor = p.NextCursor
		}
	}
	return out
}

var rotateCollections = []string{"orders", "invoices", "people"}

// TestTenantKeyRotationOverHTTP rotates a tenant's key through the API
// and follows the job to its end: every record reads back identical (data,
// version, updated_at), each is stored under the new key, the old key is
// destroyed so that a copy of an envelope taken before no longer opens,
// and the other tenant's stored bytes do not change.
func TestTenantKeyRotationOverHTTP(t *testing.T) {
	dir := t.TempDir()
	e := newEnvIn(t, dir, server.Options{KeyCacheTTL: rotationTTL})
	tokA := e.tenantWithKey("rot-a", "pooled")
	e.setTier("rot-a", "enterprise")
	e.fill(tokA, 500, rotateCollections...)
	tokB := e.tenantWithKey("rot-b", "pooled")
	e.fill(tokB, 30, rotateCollections...)
	pooled := filepath.Join(dir, "pooled.db")

	apiBefore := e.apiRecords(tokA, rotateCollections...)
	if len(apiBefore) != 500 {
		t.Fatalf("read %d records, want 500", len(apiBefore))
	}
	rawBefore := rawRecords(t, pooled, "rot-a")
	bBefore := rawRecords(t, pooled, "rot-b")

	r := e.req("POST", "/v1/admin/tenants/rot-a/encryption/rotate", e.op, nil)
	want(t, r, 202, "")
	var started struct {
		Job struct{ ID, Kind, State, Tenant string }
	}
	if err := json.Unmarshal(r.body, &started); err != nil {
		t.Fatal(err)
	}
	j := started.Job
	if !strings.HasPrefix(j.ID, "job_") || j.Kind != "rotate" || j.State != "running" || j.Tenant != "rot-a" {
		t.Fatalf("202 body %s", r.body)
	}
	if loc := r.header.Get("Location"); loc != "/v1/admin/jobs/"+j.ID {
		t.Errorf("Location %q", loc)
	}

	done := e.waitJob(j.ID)
	if done["state"] != "done" {
		t.Fatalf("job ended %v", done)
	}
	// Two passes over 500 records; the first re-seals them all.
	if done["scanned"] != float64(1000) || done["resealed"] != float64(500) {
		t.Errorf("job scanned %v and resealed %v, want 1000 and 500", done["scanned"], done["resealed"])
	}
	destroyed, _ := done["destroyed_keys"].([]any)
	if len(destroyed) != 2 || !strings.HasPrefix(fmt.Sprint(destroyed[0]), "data:") {
		t.Errorf("destroyed_keys %v, want the old data and index keys", done["destroyed_keys"])
	}

	if apiAfter := e.apiRecords(tokA, rotateCollections...); !reflect.DeepEqual(jsonValues(t, apiAfter), jsonValues(t, apiBefore)) {
		t.Errorf("records read back differently after the rotation")
	}
	rawAfter := rawRecords(t, pooled, "rot-a")
	if len(rawAfter) != len(rawBefore) {
		t.Fatalf("%d stored records after, %d before", len(rawAfter), len(rawBefore))
	}
	m := keyManager(t, filepath.Join(dir, "keys.db"), filepath.Join(dir, "keyring"))
	for i, after := range rawAfter {
		before := rawBefore[i]
		if after.Data == before.Data || after.Version != before.Version || after.UpdatedAt != before.UpdatedAt || after.ID != before.ID {
			t.Fatalf("%s/%s: stored before %+v, after %+v: want new ciphertext, same version and time", after.Collection, after.ID, before, after)
		}
	}
	if _, err := openWith(t, m, "rot-a", rawAfter[0]); err != nil {
		t.Fatalf("the current envelope does not open with the current keys: %v", err)
	}
	for _, before := range rawBefore[:20] {
		if _, err := openWith(t, m, "rot-a", before); !errors.Is(err, keys.ErrUndecryptable) {
			t.Fatalf("an envelope taken before the rotation opens: %v, want ErrUndecryptable", err)
		}
	}
	if bAfter := rawRecords(t, pooled, "rot-b"); !reflect.DeepEqual(bAfter, bBefore) {
		t.Errorf("rotating rot-a changed rot-b's stored records")
	}

	t.Run("bad requests", func(t *testing.T) {
		e := e.on(t)
		want(t, e.req("POST", "/v1/admin/tenants/nobody/encryption/rotate", e.op, nil), 404, "tenant_not_found")
		want(t, e.req("POST", "/v1/admin/tenants/Bad_ID/encryption/rotate", e.op, nil), 400, "invalid_tenant_id")
		want(t, e.req("GET", "/v1/admin/jobs/job_0000000000000000", e.op, nil), 404, "job_not_found")
		want(t, e.req("GET", "/v1/admin/jobs/"+strings.Repeat("x", 300), e.op, nil), 404, "job_not_found")
		for _, tok := range []string{tokA, tokB} {
			want(t, e.req("POST", "/v1/admin/tenants/rot-a/encryption/rotate", tok, nil), 403, "forbidden")
			want(t, e.req("POST", "/v1/admin/tenants/rot-b/encryption/rotate", tok, nil), 403, "forbidden")
			want(t, e.req("GET", "/v1/admin/jobs/"+j.ID, tok, nil), 403, "forbidden")
			want(t, e.req("POST", "/v1/admin/keyring/rotate", tok, nil), 403, "forbidden")
		}
		want(t, e.req("GET", "/v1/admin/jobs/"+j.ID, "", nil), 401, "")
	})
}

// jsonValues decodes each record, so that comparisons ignore formatting.
func jsonValues(t *testing.T, recs map[string]json.RawMessage) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, v := range recs {
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			t.Fatal(err)
		}
		out[k] = x
	}
	return out
}

// TestTenantKeyRotationResumesAfterRestart closes the server once the
// rotation job has saved progress, before it is done, and opens it again:
// the job goes on where it stopped and finishes, and every record reads
// back identical.
func TestTenantKeyRotationResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	opts := server.Options{KeyCacheTTL: rotationTTL}
	e := newEnvIn(t, dir, opts)
	tok := e.tenantWithKey("big", "pooled")
	e.setTier("big", "enterprise")
	const n = 2000
	e.fill(tok, n, "items")
	before := e.apiRecords(tok, "items")
	rawBefore := rawRecords(t, filepath.Join(dir, "pooled.db"), "big")

	r := e.req("POST", "/v1/admin/tenants/big/encryption/rotate", e.op, nil)
	want(t, r, 202, "")
	id := r.json(t)["job"].(map[string]any)["id"].(string)
	deadline := time.Now().Add(time.Minute)
	for {
		j := e.req("GET", "/v1/admin/jobs/"+id, e.op, nil).json(t)
		if j["scanned"].(float64) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress in a minute: %v", j)
		}
		time.Sleep(time.Millisecond)
	}
	e.close()

	// What the job saved when the server stopped.
	var body string
	if err := openSQLite(t, filepath.Join(dir, "keys.db")).QueryRow(`SELECT body FROM key_jobs WHERE id = ?`, id).Scan(&body); err != nil {
		t.Fatal(err)
	}
	var saved keys.Job
	if err := json.Unmarshal([]byte(body), &saved); err != nil {
		t.Fatal(err)
	}
	if saved.State != keys.JobRunning || saved.Scanned == 0 || saved.Scanned >= 2*n {
		t.Fatalf("saved job %+v: want it running with some progress (the job outran the close)", saved)
	}
	t.Logf("closed with the job in pass %d, %d scanned, %d resealed", saved.Pass, saved.Scanned, saved.Resealed)

	e = newEnvIn(t, dir, opts)
	done := e.waitJob(id)
	if done["state"] != "done" || len(done["destroyed_keys"].([]any)) == 0 {
		t.Fatalf("job after the restart: %v", done)
	}
	if after := e.apiRecords(tok, "items"); !reflect.DeepEqual(jsonValues(t, after), jsonValues(t, before)) {
		t.Errorf("records read back differently after the resumed rotation")
	}
	m := keyManager(t, filepath.Join(dir, "keys.db"), filepath.Join(dir, "keyring"))
	for _, r := range []rawRecord{rawBefore[0], rawBefore[n/2], rawBefore[n-1]} {
		if _, err := openWith(t, m, "big", r); !errors.Is(err, keys.ErrUndecryptable) {
			t.Errorf("%s: an envelope from before the rotation opens: %v", r.ID, err)
		}
	}
}

// TestOneRotationOfATenantAtATime: while a tenant's rotation job runs
// (here for the default key cache TTL, a minute), a second rotation of it
// is refused with 409 rotation_in_progress naming the running job: the
// first job's Retire would destroy the key the second made old before
// every instance's cache let go of it. Another tenant rotates meanwhile.
func TestOneRotationOfATenantAtATime(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"one", "two"} {
		tok := e.tenantWithKey(id, "pooled")
		want(t, e.req("PUT", "/v1/collections/c/records/r1", tok, `{"a":1}`), 201, "")
	}
	r := e.req("POST", "/v1/admin/tenants/one/encryption/rotate", e.op, nil)
	want(t, r, 202, "")
	first := r.header.Get("Location")
	r = e.req("POST", "/v1/admin/tenants/one/encryption/rotate", e.op, nil)
	want(t, r, 409, "rotation_in_progress")
	if !strings.Contains(string(r.body), strings.TrimPrefix(first, "/v1/admin/jobs/")) {
		t.Errorf("409 does not name the running job %s: %s", first, r.body)
	}
	want(t, e.req("POST", "/v1/admin/tenants/two/encryption/rotate", e.op, nil), 202, "")
	j := e.req("GET", first, e.op, nil)
	want(t, j, 200, "")
	if j.json(t)["state"] != "running" {
		t.Errorf("first job: %s", j.body)
	}
}
