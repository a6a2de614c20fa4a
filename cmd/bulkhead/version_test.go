package main

import (
	"encoding/json"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

func TestVersionPrintsTheBuild(t *testing.T) {
	r := runCLI(t, nil, "version")
	mustSucceed(t, r)
	if field(r.stdout, "Go") != runtime.Version() || field(r.stdout, "Version") == "" {
		t.Errorf("version printed:\n%s", r.stdout)
	}
	mustFail(t, runCLI(t, nil, "version", "extra"), 2, "takes no arguments")
}

// TestVersionOfTheBuiltBinary runs a binary built with `go build`, which
// stamps the VCS revision when it builds inside a git work tree.
func TestVersionOfTheBuiltBinary(t *testing.T) {
	out, err := exec.Command(buildBinary(t), "version", "--json").Output()
	if err != nil {
		t.Fatalf("bulkhead version --json: %v", err)
	}
	var v versionInfo
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("version --json is not JSON: %v\n%s", err, out)
	}
	if v.GoVersion != runtime.Version() || v.Module != "github.com/bulkhead-dev/bulkhead" || v.Version == "" {
		t.Errorf("version --json: %+v", v)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Logf("not in a git work tree (%v): the revision is not checked", err)
		return
	}
	if want := strings.TrimSpace(string(head)); v.Revision != want {
		t.Errorf("revision %q, want HEAD %s", v.Revision, want)
	}
}
