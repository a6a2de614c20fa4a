package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitForLog waits until the serve process has logged want (a hang guard
// bounds the wait; nothing is timed).
func waitForLog(t *testing.T, p *serveProcess, want string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(p.logs.String(), want) {
		select {
		case <-deadline:
			t.Fatalf("serve did not log %s:\n%s", want, p.logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestServeRedactsItsLog runs a real `bulkhead serve` with extra redaction
// flags (a pattern holding a comma stays whole) and sends it an operator
// token and values of the configured patterns as X-Request-ID (which the request log keeps as client_request_id): the
// process's log on stderr shows the markers, not the values.
func TestServeRedactsItsLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p := startServeProcess(t, dir, "--log-level", "debug",
		"--log-redact-patterns", `acct-[0-9]{8}`, "--log-redact-patterns", `case[-,][0-9]+`, "--log-redact-keys", "customer,ssn")
	url := listeningAddr(p.logs.String())
	op, err := os.ReadFile(filepath.Join(dir, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(op))
	for _, id := range []string{tok, "acct-12345678", "case-42"} {
		req, _ := http.NewRequest("GET", url+"/v1/admin/tenants", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Request-ID", id)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	// The request log is written after the response; a last request's
	// line proves the earlier ones are in.
	res, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	waitForLog(t, p, `"route":"GET /healthz"`)
	logs := p.logs.String()
	for _, secret := range []string{tok, tok[4:], "acct-12345678", "case-42"} {
		if strings.Contains(logs, secret) {
			t.Errorf("serve logged %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, `"client_request_id":"[REDACTED:token]"`) || !strings.Contains(logs, `"client_request_id":"[REDACTED]"`) {
		t.Errorf("the request log lacks the redacted client ids:\n%s", logs)
	}
}

func TestServeRefusesABadRedactPattern(t *testing.T) {
	mustFail(t, runCLI(t, nil, "serve", "--log-redact-patterns", "acct-("), 2, "--log-redact-patterns", `"acct-("`)
	mustFail(t, runCLI(t, nil, "serve", "--log-redact-patterns", ".*"), 2, "matches the empty string")
}
