package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
)

func TestTenantRotateKeyJobShowAndKeyringRotate(t *testing.T) {
	ts := startServerWith(t, server.Options{KeyCacheTTL: 50 * time.Millisecond})
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))
	mustSucceed(t, ts.cli(t, "tenant", "create", "globex", "--isolation", "database"))
	key := createKey(t, ts, "acme", "writer")
	for i := range 30 {
		path := fmt.Sprintf("/v1/collections/notes/records/n%d", i)
		if code, body := ts.request(t, http.MethodPut, path, key, fmt.Sprintf(`{"i":%d}`, i)); code != http.StatusCreated {
			t.Fatalf("write: %d %s", code, body)
		}
	}

	r := ts.cli(t, "tenant", "rotate-key", "acme")
	mustSucceed(t, r)
	job := field(r.stdout, "Job")
	if !strings.HasPrefix(job, "job_") || field(r.stdout, "Kind") != "rotate" || field(r.stdout, "Tenant") != "acme" {
		t.Fatalf("rotate-key printed:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "bulkhead job show "+job) {
		t.Errorf("rotate-key does not say how to follow the job; stderr %q", r.stderr)
	}

	t.Run("job show prints the job, --json the API's", func(t *testing.T) {
		r := ts.cli(t, "job", "show", job)
		mustSucceed(t, r)
		if field(r.stdout, "Job") != job || field(r.stdout, "Kind") != "rotate" {
			t.Errorf("job show printed:\n%s", r.stdout)
		}
		r = ts.cli(t, "job", "show", job, "--json")
		mustSucceed(t, r)
		var j jobView
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.ID != job {
			t.Errorf("job show --json = %q (err %v)", r.stdout, err)
		}
	})

	t.Run("rotate-key --wait follows the job to its end", func(t *testing.T) {
		// One rotation of a tenant at a time: wait for the first.
		deadline := time.Now().Add(time.Minute)
		for field(ts.cli(t, "job", "show", job).stdout, "State") == "running" {
			if time.Now().After(deadline) {
				t.Fatalf("job %s still running after a minute", job)
			}
			time.Sleep(50 * time.Millisecond)
		}
		r := ts.cli(t, "tenant", "rotate-key", "acme", "--wait")
		mustSucceed(t, r)
		if field(r.stdout, "State") != "done" || field(r.stdout, "Resealed") != "30" || !strings.Contains(field(r.stdout, "Destroyed keys"), "data:") {
			t.Errorf("rotate-key --wait printed:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, "records scanned") || !strings.Contains(r.stderr, "done") {
			t.Errorf("no progress on stderr: %q", r.stderr)
		}
		if code, body := ts.request(t, http.MethodGet, "/v1/collections/notes/records/n7", key, ""); code != 200 || !strings.Contains(body, `"i":7`) {
			t.Errorf("read after two rotations: %d %s", code, body)
		}
		r = ts.cli(t, "tenant", "rotate-key", "globex", "--wait", "--json")
		mustSucceed(t, r)
		var j jobView
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.State != "done" || j.Tenant != "globex" {
			t.Errorf("--wait --json = %q (err %v)", r.stdout, err)
		}
	})

	t.Run("keyring rotate rewraps every tenant's keys", func(t *testing.T) {
		r := ts.cli(t, "keyring", "rotate")
		mustSucceed(t, r)
		if field(r.stdout, "Rewrapped") != "2 tenant keysets" || field(r.stdout, "Retired keys") == "-" {
			t.Errorf("keyring rotate printed:\n%s", r.stdout)
		}
		if code, body := ts.request(t, http.MethodGet, "/v1/collections/notes/records/n3", key, ""); code != 200 || !strings.Contains(body, `"i":3`) {
			t.Errorf("read after the keyring rotation: %d %s", code, body)
		}
		r = ts.cli(t, "keyring", "rotate", "--json")
		mustSucceed(t, r)
		if !strings.Contains(r.stdout, `"primary_key"`) {
			t.Errorf("keyring rotate --json printed %q", r.stdout)
		}
	})

	t.Run("mistakes say how to fix them", func(t *testing.T) {
		mustFail(t, ts.cli(t, "tenant", "rotate-key", "nobody"), 1, "tenant_not_found", "HTTP 404", "bulkhead tenant list")
		mustFail(t, ts.cli(t, "job", "show", "job_0000000000000000"), 1, "job_not_found", "HTTP 404", "rotate-key")
		mustFail(t, ts.cli(t, "job", "show"), 2, "needs JOB")
		mustFail(t, ts.cli(t, "tenant", "rotate-key"), 2, "needs ID")
		mustFail(t, runCLI(t, nil, "job", "show", job, "--addr", ts.url, "--token", key), 1, "forbidden", "HTTP 403")
		mustFail(t, runCLI(t, nil, "keyring", "rotate", "--addr", ts.url, "--token", key), 1, "forbidden", "HTTP 403")
	})
}

func TestRotateKeyRefusals(t *testing.T) {
	// The default key cache TTL: a rotation's job runs for a minute.
	ts := startServer(t)
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))
	r := ts.cli(t, "tenant", "rotate-key", "acme")
	mustSucceed(t, r)
	mustFail(t, ts.cli(t, "tenant", "rotate-key", "acme"), 1, "rotation_in_progress", "HTTP 409", field(r.stdout, "Job"), "bulkhead job show")

	ts = startServerWith(t, server.Options{DisableEncryption: true})
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))
	mustFail(t, ts.cli(t, "tenant", "rotate-key", "acme"), 1, "encryption_disabled", "HTTP 409", "--encryption")
	mustFail(t, ts.cli(t, "keyring", "rotate"), 1, "encryption_disabled")
	mustFail(t, ts.cli(t, "job", "show", "job_0000000000000000"), 1, "job_not_found")
}
