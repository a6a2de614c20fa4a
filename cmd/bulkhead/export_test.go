package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// adminToken creates an admin key for tenant id and returns its token.
func adminToken(t *testing.T, ts *testServer, id string) string {
	t.Helper()
	r := ts.cli(t, "key", "create", id, "--role", "admin", "--json")
	mustSucceed(t, r)
	var k struct{ Token string }
	if err := json.Unmarshal([]byte(r.stdout), &k); err != nil || k.Token == "" {
		t.Fatalf("key create --json: %v\n%s", err, r.stdout)
	}
	return k.Token
}

// seedTenants creates acme and beta with the same collections and ids.
func seedTenants(t *testing.T, ts *testServer) (acme string, records int) {
	t.Helper()
	for _, id := range []string{"acme", "beta"} {
		mustSucceed(t, ts.cli(t, "tenant", "create", id))
		tok := adminToken(t, ts, id)
		records = 0
		for _, c := range []string{"notes", "tasks"} {
			for i := range 7 {
				code, body := ts.request(t, "PUT", fmt.Sprintf("/v1/collections/%s/records/r%d", c, i), tok, fmt.Sprintf(`{"owner":%q,"i":%d}`, id, i))
				if code != 201 {
					t.Fatalf("PUT: %d %s", code, body)
				}
				records++
			}
		}
		if id == "acme" {
			acme = tok
		}
	}
	return acme, records
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestTenantExport(t *testing.T) {
	ts := startServer(t)
	_, n := seedTenants(t, ts)
	dir := t.TempDir()
	file := filepath.Join(dir, "acme.ndjson")

	r := ts.cli(t, "tenant", "export", "acme", "--output", file)
	mustSucceed(t, r)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	lines = lines[:len(lines)-1]
	if len(lines) != n || strings.Contains(string(data), `"owner":"beta"`) {
		t.Fatalf("export has %d lines (want %d) or beta's records:\n%s", len(lines), n, data)
	}
	if field(r.stdout, "Records") != fmt.Sprint(n) || field(r.stdout, "SHA-256") != sha(data) || field(r.stdout, "Bytes") != fmt.Sprint(len(data)) {
		t.Errorf("summary does not describe the file:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("exported %d records", n)) {
		t.Errorf("no progress on stderr: %q", r.stderr)
	}

	t.Run("to stdout, the summary goes to stderr", func(t *testing.T) {
		r := ts.cli(t, "tenant", "export", "acme", "--json")
		mustSucceed(t, r)
		if r.stdout != string(data) {
			t.Fatalf("stdout is not the export:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, `"sha256": "`+sha(data)+`"`) {
			t.Errorf("no JSON summary on stderr: %s", r.stderr)
		}
	})
	t.Run("--after resumes after a record", func(t *testing.T) {
		r := ts.cli(t, "tenant", "export", "acme", "--after", "notes/r6")
		mustSucceed(t, r)
		if r.stdout != strings.Join(lines[7:], "") {
			t.Fatalf("after notes/r6:\n%s\nwant\n%s", r.stdout, strings.Join(lines[7:], ""))
		}
		mustFail(t, ts.cli(t, "tenant", "export", "acme", "--after", "notes"), 2, "--after", "invalid export position")
	})
	t.Run("an existing output file is not replaced", func(t *testing.T) {
		mustFail(t, ts.cli(t, "tenant", "export", "acme", "--output", file), 1, "already exists")
		if b, _ := os.ReadFile(file); string(b) != string(data) {
			t.Fatal("the file changed")
		}
	})
	t.Run("a missing tenant", func(t *testing.T) {
		mustFail(t, ts.cli(t, "tenant", "export", "nobody"), 1, "tenant_not_found")
	})
}

func TestTenantOffboardAndReceiptVerify(t *testing.T) {
	ts := startServer(t)
	acme, n := seedTenants(t, ts)
	dir := t.TempDir()
	file := filepath.Join(dir, "acme.ndjson")

	mustFail(t, ts.cli(t, "tenant", "offboard", "acme", "--yes"), 2, "--export")
	mustFail(t, ts.cli(t, "tenant", "offboard", "acme", "--export", file), 1, "without --yes")
	if code, _ := ts.request(t, "GET", "/v1/collections", acme, ""); code != 200 {
		t.Fatalf("acme was touched by a refused offboard: %d", code)
	}

	r := ts.cli(t, "tenant", "offboard", "acme", "--export", file, "--yes")
	mustSucceed(t, r)
	data, _ := os.ReadFile(file)
	if strings.Count(string(data), "\n") != n || field(r.stdout, "Records") != fmt.Sprint(n) {
		t.Fatalf("offboard exported %d lines, printed:\n%s", strings.Count(string(data), "\n"), r.stdout)
	}
	rcpt := file + ".receipt.json"
	if field(r.stdout, "Receipt") != rcpt {
		t.Errorf("receipt path printed %q, want %q", field(r.stdout, "Receipt"), rcpt)
	}
	mustFail(t, ts.cli(t, "tenant", "show", "acme"), 1, "tenant_not_found")
	if code, _ := ts.request(t, "GET", "/v1/collections", acme, ""); code != 401 {
		t.Errorf("acme's key still works: %d", code)
	}

	verify := func(args ...string) result {
		return runCLI(t, nil, append([]string{"receipt", "verify"}, args...)...)
	}
	t.Run("the receipt verifies against the server's key, with the export", func(t *testing.T) {
		r := verify(rcpt, "--server", ts.url, "--token", ts.token, "--export", file)
		mustSucceed(t, r)
		if !strings.Contains(r.stdout, "VALID") || field(r.stdout, "Tenant") != "acme" || !strings.HasPrefix(field(r.stdout, "Export file"), "OK") {
			t.Errorf("verdict:\n%s", r.stdout)
		}
		r = verify(rcpt, "--server", ts.url, "--token", ts.token, "--json")
		mustSucceed(t, r)
		var v struct {
			Valid   bool
			Receipt struct{ Records int }
		}
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || !v.Valid || v.Receipt.Records != n {
			t.Errorf("--json verdict %v:\n%s", err, r.stdout)
		}
	})

	// The public key, as a base64 argument and as the endpoint's JSON in a file.
	keyJSON := filepath.Join(dir, "receipt-key.json")
	code, body := ts.request(t, "GET", "/v1/admin/receipt-key", ts.token, "")
	if code != 200 {
		t.Fatalf("receipt-key: %d %s", code, body)
	}
	writeFile(t, keyJSON, body)
	var k struct {
		PublicKey string `json:"public_key"`
	}
	_ = json.Unmarshal([]byte(body), &k)
	for _, key := range []string{k.PublicKey, keyJSON} {
		mustSucceed(t, verify(rcpt, "--public-key", key, "--export", file))
	}

	raw, _ := os.ReadFile(rcpt)
	t.Run("a changed byte of the receipt or the signature fails", func(t *testing.T) {
		start := strings.Index(string(raw), `"receipt":`) + len(`"receipt":`)
		sig := strings.Index(string(raw), `"signature":"`) + len(`"signature":"`)
		for _, i := range []int{start + 1, start + 20, sig - 20, sig, sig + 10} {
			b := []byte(string(raw))
			b[i] ^= 1
			p := filepath.Join(dir, fmt.Sprintf("tampered-%d.json", i))
			writeFile(t, p, string(b))
			r := verify(p, "--public-key", k.PublicKey)
			if r.code == 0 {
				t.Errorf("byte %d changed (%q) still verifies", i, b[i])
			}
		}
	})
	t.Run("another key fails", func(t *testing.T) {
		other := startServer(t)
		mustFail(t, verify(rcpt, "--server", other.url, "--token", other.token), 1, "does not check out")
	})
	t.Run("an export that is not the one named fails", func(t *testing.T) {
		cut := filepath.Join(dir, "cut.ndjson")
		writeFile(t, cut, string(data[:strings.LastIndex(strings.TrimSuffix(string(data), "\n"), "\n")+1]))
		r := verify(rcpt, "--public-key", k.PublicKey, "--export", cut)
		mustFail(t, r, 1, "does not check out")
		if !strings.Contains(r.stdout, "MISMATCH") {
			t.Errorf("verdict does not say what failed:\n%s", r.stdout)
		}
	})
	t.Run("usage mistakes", func(t *testing.T) {
		mustFail(t, verify(rcpt), 2, "exactly one of --public-key and --server")
		mustFail(t, verify(rcpt, "--public-key", "nonsense"), 1, "invalid public key")
		mustFail(t, verify(file, "--public-key", k.PublicKey), 1, "is not a receipt")
	})
}

// cutServer answers an export with three whole records and half of a
// fourth, then breaks the connection (as a server whose store fails
// mid-export does), or, without abort, ends cleanly without the
// trailers of a complete export.
func cutServer(t *testing.T, abort bool) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		for i := range 3 {
			fmt.Fprintf(w, `{"id":"r%d","collection":"notes","data":{}}`+"\n", i)
		}
		if abort {
			fmt.Fprint(w, `{"id":"r3","coll`)
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

func TestTenantExportCutShort(t *testing.T) {
	t.Run("a broken stream keeps the whole records and names the resume position", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "acme.ndjson")
		r := runCLI(t, nil, "tenant", "export", "acme", "--output", file, "--addr", cutServer(t, true), "--token", "bko_x")
		mustFail(t, r, 1, "cut short after 3 complete records", "resume with --after notes/r2")
		b, _ := os.ReadFile(file)
		if strings.Count(string(b), "\n") != 3 || !strings.HasSuffix(string(b), "\n") {
			t.Fatalf("the file keeps more or less than the 3 whole records:\n%s", b)
		}
	})
	t.Run("a stream without the trailers of a complete export is refused", func(t *testing.T) {
		r := runCLI(t, nil, "tenant", "export", "acme", "--addr", cutServer(t, false), "--token", "bko_x")
		mustFail(t, r, 1, "incomplete")
	})
}
