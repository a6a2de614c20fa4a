package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/recordapi"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
)

// replicaReads reads bulkhead_replica_reads_total of shard main from /metrics.
func (e *env) replicaReads(servedBy, reason string) float64 {
	e.t.Helper()
	m := e.req("GET", "/metrics", "", nil)
	want(e.t, m, 200, "")
	re := regexp.MustCompile(`(?m)^bulkhead_replica_reads_total\{reason="` + reason + `",served_by="` + servedBy + `",shard="main"\} (\S+)$`)
	sub := re.FindSubmatch(m.body)
	if sub == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(sub[1]), 64)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// replicaClock is the server's clock in the replica tests: the real time,
// moved forward by age once the tenants exist, so that they are old
// enough for the replica to vouch for their incarnation (a replica serves
// no tenant created more recently than its lag, its poll interval and a
// second of clock skew).
type replicaClock struct{ shift atomic.Int64 }

func (c *replicaClock) now() time.Time { return time.Now().Add(time.Duration(c.shift.Load())) }

// age makes every tenant a minute older.
func (c *replicaClock) age() { c.shift.Add(int64(time.Minute)) }

// replicaUsable waits until /metrics says the main shard's replica is usable.
func (e *env) replicaUsable() {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(string(e.req("GET", "/metrics", "", nil).body), `bulkhead_replica_usable{shard="main"} 1`) {
		if time.Now().After(deadline) {
			e.t.Fatal("the replica is not usable after a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Over HTTP, with replay paused on the replica: a PUT's commit token sent
// back on a GET gets the new data (from the primary); a GET without it is
// served by the replica, stale; another tenant's reads on the replica see
// nothing of the first tenant's.
func TestReadAfterCommitTokenOverHTTP(t *testing.T) {
	for _, mode := range []string{"pooled", "schema", "database"} {
		t.Run(mode, func(t *testing.T) {
			opts, envs := pgOptions(t)
			rep := pgtest.NewReplica(t, envs["main"], true)
			opts.PostgresReplicaURL, opts.ReplicaMaxLag, opts.DisableRateLimit = rep.ServeURL, time.Hour, true
			clock := &replicaClock{}
			opts.Now = clock.now
			e := newEnvIn(t, t.TempDir(), opts)
			acme := e.tenantWithKey("acme", mode)
			globex := e.tenantWithKey("globex", mode)
			e.setTier("acme", limits.Enterprise)
			const path = "/v1/collections/notes/records/n1"

			r := e.req("PUT", path, acme, `{"v":1}`)
			want(t, r, 201, "")
			tok1 := r.header.Get(recordapi.CommitTokenHeader)
			if tok1 == "" {
				t.Fatal("PUT answered without a commit token")
			}
			want(t, e.req("PUT", "/v1/collections/notes/records/g1", globex, `{"owner":"globex"}`), 201, "")
			clock.age()
			rep.CatchUp(t)
			e.replicaUsable()
			r = e.req("GET", path, acme, nil, recordapi.ReadAfterHeader, tok1)
			want(t, r, 200, "")
			if d := r.json(t)["data"].(map[string]any); d["v"] != 1.0 {
				t.Fatalf("GET after catching up: %s", r.body)
			}
			fresh := e.replicaReads("replica", "fresh")
			if fresh < 1 {
				t.Fatalf("the replica served no read after catching up (replica/fresh = %v)", fresh)
			}

			rep.Pause(t)
			r = e.req("PUT", path, acme, `{"v":2}`, "If-Match", `"1"`)
			want(t, r, 200, "")
			tok2 := r.header.Get(recordapi.CommitTokenHeader)
			if tok2 == "" || tok2 == tok1 {
				t.Fatalf("second commit token %q (first %q)", tok2, tok1)
			}
			ahead := e.replicaReads("primary", "token_ahead")
			r = e.req("GET", path, acme, nil, recordapi.ReadAfterHeader, tok2)
			want(t, r, 200, "")
			if d := r.json(t)["data"].(map[string]any); d["v"] != 2.0 || r.header.Get("ETag") != `"2"` {
				t.Fatalf("GET with the commit token while replay is paused: %s", r.body)
			}
			if n := e.replicaReads("primary", "token_ahead"); n != ahead+1 {
				t.Fatalf("primary/token_ahead went from %v to %v, want one more", ahead, n)
			}
			r = e.req("GET", path, acme, nil)
			want(t, r, 200, "")
			if d := r.json(t)["data"].(map[string]any); d["v"] != 1.0 {
				t.Fatalf("GET without a token while replay is paused: %s, want the replica's stale version", r.body)
			}
			r = e.req("GET", "/v1/collections/notes/records", acme, nil, recordapi.ReadAfterHeader, tok2)
			want(t, r, 200, "")
			if items := r.json(t)["items"].([]any); len(items) != 1 || items[0].(map[string]any)["version"] != 2.0 {
				t.Fatalf("list with the commit token: %s", r.body)
			}

			t.Run("another tenant's token is refused", func(t *testing.T) {
				e := e.on(t)
				want(t, e.req("GET", "/v1/collections/notes/records/g1", globex, nil, recordapi.ReadAfterHeader, tok2), 400, "invalid_read_after")
				want(t, e.req("GET", "/v1/collections", globex, nil, recordapi.ReadAfterHeader, tok1+"x"), 400, "invalid_read_after")
			})
			t.Run("another tenant's reads on the replica see nothing of acme's", func(t *testing.T) {
				e := e.on(t)
				before := e.replicaReads("replica", "fresh")
				missing := e.req("GET", "/v1/collections/notes/records/nope", globex, nil)
				want(t, missing, 404, "not_found")
				other := e.req("GET", path, globex, nil)
				want(t, other, 404, "not_found")
				if string(other.body) != string(missing.body) {
					t.Fatalf("acme's record and a missing one differ for globex:\n%s\n%s", other.body, missing.body)
				}
				r := e.req("GET", "/v1/collections/notes/records", globex, nil)
				want(t, r, 200, "")
				if items := r.json(t)["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != "g1" {
					t.Fatalf("globex lists %s", r.body)
				}
				r = e.req("GET", "/v1/collections", globex, nil)
				want(t, r, 200, "")
				if items := r.json(t)["items"].([]any); len(items) != 1 || items[0].(map[string]any)["records"] != 1.0 {
					t.Fatalf("globex's collections: %s", r.body)
				}
				if n := e.replicaReads("replica", "fresh"); n != before+4 {
					t.Fatalf("replica/fresh went from %v to %v, want 4 more: the reads did not run on the replica", before, n)
				}
			})
		})
	}
}

// TestReadAfterExampleOfTheDocs runs docs/http-api.md's curl example
// against a server with a replica: the write's token, sent back, reads the
// write.
func TestReadAfterExampleOfTheDocs(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	page, err := os.ReadFile(filepath.Join("..", "docs", "http-api.md"))
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(page), -1) {
		if strings.Contains(m[1], "Bulkhead-Read-After") {
			block = m[1]
		}
	}
	if block == "" {
		t.Fatal("docs/http-api.md has no sh block with Bulkhead-Read-After")
	}
	opts, envs := pgOptions(t)
	rep := pgtest.NewReplica(t, envs["main"], true)
	opts.PostgresReplicaURL, opts.DisableRateLimit = rep.ServeURL, true
	clock := &replicaClock{}
	opts.Now = clock.now
	e := newEnvIn(t, t.TempDir(), opts)
	key := e.tenantWithKey("acme", "pooled")
	clock.age()
	rep.CatchUp(t)
	e.replicaUsable()
	rep.Pause(t) // the token's read must then go to the primary
	script := "set -euo pipefail\n" + strings.ReplaceAll(block, "localhost:8080", strings.TrimPrefix(e.http.URL, "http://"))
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "KEY="+key)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the example fails: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"title":"hello"`) {
		t.Fatalf("the example's read does not see its write:\n%s", out)
	}
	if n := e.replicaReads("primary", "token_ahead"); n != 1 {
		t.Fatalf("primary/token_ahead = %v, want 1: the example sent no token", n)
	}
}

// A tenant deleted and created again while the replica has not replayed
// the deletion: the new tenant's reads do not see the old one's records.
func TestRecreatedTenantDoesNotReadItsPredecessorFromTheReplica(t *testing.T) {
	for _, mode := range []string{"pooled", "database"} {
		t.Run(mode, func(t *testing.T) {
			opts, envs := pgOptions(t)
			rep := pgtest.NewReplica(t, envs["main"], true)
			opts.PostgresReplicaURL, opts.ReplicaMaxLag, opts.DisableRateLimit = rep.ServeURL, time.Hour, true
			clock := &replicaClock{}
			opts.Now = clock.now
			e := newEnvIn(t, t.TempDir(), opts)
			old := e.tenantWithKey("acme", mode)
			want(t, e.req("PUT", "/v1/collections/notes/records/n1", old, `{"incarnation":1}`), 201, "")
			clock.age()
			rep.CatchUp(t)
			e.replicaUsable()
			rep.Pause(t)
			want(t, e.req("DELETE", "/v1/admin/tenants/acme", e.op, nil), 204, "")
			key := e.tenantWithKey("acme", mode)
			want(t, e.req("GET", "/v1/collections/notes/records/n1", key, nil), 404, "not_found")
			r := e.req("GET", "/v1/collections/notes/records", key, nil)
			want(t, r, 200, "")
			if items := r.json(t)["items"].([]any); len(items) != 0 {
				t.Fatalf("the new acme lists its predecessor's records: %s", r.body)
			}
			if n := e.replicaReads("primary", "new_tenant"); n != 2 {
				t.Fatalf("primary/new_tenant = %v, want 2", n)
			}
		})
	}
}
