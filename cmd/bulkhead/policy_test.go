package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writePolicyFile(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyCheckDefaultSetPasses(t *testing.T) {
	r := runCLI(t, nil, "policy", "check")
	mustSucceed(t, r)
	for _, w := range []string{"EXPECTED", "reader cannot write", "support with a live grant reads", " 0 failed"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
		}
	}
}

func TestPolicyCheckReportsFailedCases(t *testing.T) {
	dir := t.TempDir()
	writePolicyFile(t, dir, "export.cedar", `@id("readers-export") permit (principal is TenantKey, action == Action::"record.export", resource) when { principal.role == "reader" };`)
	writePolicyFile(t, dir, "export.cases.json", "["+
		strings.Join([]string{
			jsonCase("reader exports", "allow", "record.export", "acme"),
			jsonCase("reader exports globex", "allow", "record.export", "globex"),
		}, ",")+"]")

	r := runCLI(t, nil, "policy", "check", "--dir", dir)
	mustFail(t, r, 1, "1 of 2 cases failed")
	if !strings.Contains(r.stdout, "FAIL") || !strings.Contains(r.stdout, "deny (tenant-isolation)") {
		t.Errorf("table does not show the failing case and its policy:\n%s", r.stdout)
	}

	r = runCLI(t, nil, "policy", "check", "--dir", dir, "--json")
	mustFail(t, r, 1, "1 of 2 cases failed")
	var rep struct {
		OK     bool
		Failed int
		Cases  []struct{ Name, Got string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, r.stdout)
	}
	if rep.OK || rep.Failed != 1 || len(rep.Cases) != 2 || rep.Cases[1].Got != "deny" {
		t.Errorf("json report = %+v", rep)
	}
}

// jsonCase is one case of a reader key of tenant acme.
func jsonCase(name, expect, action, tenant string) string {
	c := map[string]any{
		"name": name, "expect": expect,
		"request": map[string]any{
			"principal": map[string]string{"kind": "tenant_key", "id": "k1", "tenant": "acme", "role": "reader"},
			"action":    action, "tenant": tenant,
		},
	}
	b, _ := json.Marshal(c)
	return string(b)
}

func TestPolicyCheckParseErrorNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	writePolicyFile(t, dir, "bad.cedar", "// ok\n\npermit (principal, action resource);\n")
	r := runCLI(t, nil, "policy", "check", "--dir", dir)
	mustFail(t, r, 1, "bad.cedar:3:")
}

func TestPolicyCheckMissingDir(t *testing.T) {
	r := runCLI(t, nil, "policy", "check", "--dir", filepath.Join(t.TempDir(), "nope"))
	mustFail(t, r, 1, "no such file or directory")
}
