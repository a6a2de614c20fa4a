package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// shBlock returns the first ```sh block of the page (a path from the
// repository root) that contains marker.
func shBlock(t *testing.T, page, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", page))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		if strings.Contains(m[1], marker) {
			return m[1]
		}
	}
	t.Fatalf("%s has no sh block with %q", page, marker)
	return ""
}

// TestWalkthroughPastesAsWritten runs docs/walkthrough.md's block with
// bash in the directory of a real `bulkhead serve` (its data dir is
// ./bulkhead-data, as in the page), then, in the same shell, the examples
// of the other pages that use its $OP: what a reader pastes. Only the
// server's address is changed (to a free port). Nothing may be refused
// for want of a credential.
func TestWalkthroughPastesAsWritten(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	dir := t.TempDir()
	p := startServeProcess(t, filepath.Join(dir, "bulkhead-data"))
	url := listeningAddr(p.logs.String()) // http://127.0.0.1:port
	host := strings.TrimPrefix(url, "http://")

	walk := shBlock(t, "docs/walkthrough.md", "BH=http://127.0.0.1:8080")
	script := strings.Replace(walk, "BH=http://127.0.0.1:8080", "BH="+url, 1) + "\n" +
		"echo '--- limits.md'\n" + shBlock(t, "docs/limits.md", "PATCH localhost:8080/v1/admin/tenants/acme") + "\n" +
		"echo '--- identity.md'\n" + shBlock(t, "docs/identity.md", "support-agents")
	script = strings.ReplaceAll(script, "localhost:8080", host)
	cmd := exec.Command("bash", "-e", "-u", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the pasted pages fail: %v\n%s", err, out)
	}
	s := string(out)
	for _, refused := range []string{`"status":401`, "HTTP 401", "unauthenticated"} {
		if strings.Contains(s, refused) {
			t.Errorf("a pasted command was refused for its credential (%s):\n%s", refused, s)
		}
	}
	notFound := `{"type":"https://bulkhead.dev/problems/not_found"`
	if n := strings.Count(s, notFound); n != 3 {
		t.Errorf("want globex's three identical 404 answers, got %d:\n%s", n, s)
	}
	_, tail, _ := strings.Cut(s, "--- identity.md")
	if !strings.Contains(tail, `"reason":"ticket 4711"`) || !strings.Contains(tail, `{"items":[{"name":"invoices"`) {
		t.Errorf("the support agent did not read acme's collections under its grant:\n%s", tail)
	}
	_, limits, _ := strings.Cut(s, "--- limits.md")
	if !strings.Contains(limits, `"tier":"enterprise"`) {
		t.Errorf("limits.md's PATCH did not apply:\n%s", limits)
	}
}
