package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadmeFollowsATenantsFeed runs the README's change-feed block with
// bash against a real `bulkhead serve` (only the address changed) and
// writes records of the tenant it creates until the curl prints one's
// event.
func TestReadmeFollowsATenantsFeed(t *testing.T) {
	for _, tool := range []string{"curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	dir := t.TempDir()
	p := startServeProcess(t, filepath.Join(dir, "bulkhead-data"))
	url := listeningAddr(p.logs.String())
	host := strings.TrimPrefix(url, "http://")
	script := shBlock(t, "README.md", "/v1/events")
	script = strings.NewReplacer("localhost:8080", host, "127.0.0.1:8080", host).Replace(script)
	cmd := exec.Command("bash", "-e", "-u", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	op, err := os.ReadFile(filepath.Join(dir, "bulkhead-data", "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, token, body string) *http.Response {
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(token))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// The block creates feedco; a writer key of its own writes until the
	// stream (which starts after the last event) shows one.
	var writer string
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the block ended without an event; stderr:\n%s", stderr.String())
			}
			data, found := strings.CutPrefix(line, "data: ")
			if !found {
				continue
			}
			var ev struct{ Tenant, Collection, Op string }
			if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.Tenant != "feedco" || ev.Collection != "notes" {
				t.Fatalf("the feed printed %q", line)
			}
			return
		case <-tick.C:
			if writer == "" {
				res := call("POST", "/v1/admin/tenants/feedco/keys", string(op), `{"role":"writer","name":"w"}`)
				var k struct{ Token string }
				_ = json.NewDecoder(res.Body).Decode(&k)
				res.Body.Close()
				writer = k.Token // empty until the block has created the tenant
				continue
			}
			call("PUT", "/v1/collections/notes/records/n1", writer, `{"n":1}`).Body.Close()
		case <-deadline:
			t.Fatalf("no event within 60s; stderr:\n%s", stderr.String())
		}
	}
}
