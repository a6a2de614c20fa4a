package main

import (
	"debug/buildinfo"
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

// TestVersionOfTheBuiltBinary runs a binary built with `go build`: it
// prints exactly the VCS revision stamped into the binary's build info, and
// that is git's HEAD when the build could stamp it (a git work tree; not a
// linked worktree or an export, where Go stamps nothing).
func TestVersionOfTheBuiltBinary(t *testing.T) {
	bin := buildBinary(t)
	out, err := exec.Command(bin, "version", "--json").Output()
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
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var stamped string
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			stamped = s.Value
		}
	}
	if v.Revision != stamped {
		t.Fatalf("revision %q, but the binary's build info holds %q", v.Revision, stamped)
	}
	if stamped == "" {
		t.Logf("the build stamped no VCS revision here (no git work tree Go can read): only the agreement with the build info is checked")
		return
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("the binary names revision %s but git cannot say which is HEAD: %v", stamped, err)
	}
	if want := strings.TrimSpace(string(head)); v.Revision != want {
		t.Errorf("revision %q, want HEAD %s", v.Revision, want)
	}
}
