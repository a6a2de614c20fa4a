package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startServe runs `bulkhead serve` in-process on a free loopback port with
// dataDir and returns its base URL, its log, and a stop function that
// cancels its context and returns its exit code.
func startServe(t *testing.T, dataDir string, extra ...string) (url string, logs *syncBuffer, stop func() int) {
	t.Helper()
	return startServeEnv(t, nil, dataDir, extra...)
}

// startServeEnv is startServe with the environment variables in env (and
// no others), as a deployment that configures serve through BULKHEAD_*.
func startServeEnv(t *testing.T, env map[string]string, dataDir string, extra ...string) (url string, logs *syncBuffer, stop func() int) {
	t.Helper()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	var stdout bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, args, &stdout, logs, mapEnv(env))
	}()
	stopped := false
	stop = func() int {
		t.Helper()
		cancel()
		select {
		case code := <-done:
			stopped = true
			return code
		case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
			t.Fatalf("serve did not stop after its context was cancelled; log:\n%s", logs.String())
			return -1
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})

	// Wait for the "listening" log line, which carries the address.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if addr := listeningAddr(logs.String()); addr != "" {
			return addr, logs, stop
		}
		select {
		case code := <-done:
			stopped = true
			t.Fatalf("serve exited with %d before listening; log:\n%s", code, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log its address; log:\n%s", logs.String())
		}
	}
}

// listeningAddr finds the addr of the "bulkhead listening" JSON log line.
func listeningAddr(log string) string {
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var line struct {
			Msg               string `json:"msg"`
			Addr              string `json:"addr"`
			OperatorTokenFile string `json:"operator_token_file"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "bulkhead listening" {
			return line.Addr
		}
	}
	return ""
}

func TestServe(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data") // serve creates it
	url, logs, stop := startServe(t, dataDir)

	tokenFile := filepath.Join(dataDir, "operator.token")
	info, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatalf("serve wrote no operator token: %v", err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("operator.token has mode %o, want 600", mode)
	}
	if !strings.Contains(logs.String(), `"operator_token_file":"`+tokenFile+`"`) {
		t.Errorf("the log does not name the token file %s:\n%s", tokenFile, logs.String())
	}

	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz = %d", resp.StatusCode)
	}

	// The client commands find the served address and the token file.
	mustSucceed(t, runCLI(t, map[string]string{"BULKHEAD_ADDR": url, "BULKHEAD_DATA_DIR": dataDir},
		"tenant", "create", "acme", "--isolation", "database"))
	key := field(runCLI(t, nil, "key", "create", "acme", "--role", "writer", "--addr", url, "--data-dir", dataDir).stdout, "Token")
	if key == "" {
		t.Fatal("key create printed no token")
	}

	if code := stop(); code != 0 {
		t.Fatalf("serve exited with %d after its context was cancelled; log:\n%s", code, logs.String())
	}
	if !strings.Contains(logs.String(), "bulkhead stopped") {
		t.Errorf("serve did not log a clean stop:\n%s", logs.String())
	}
	// SQLite removes a database's -wal file when its last connection
	// closes, so a leftover one means a store was not closed.
	if wal := walFiles(t, dataDir); len(wal) > 0 {
		t.Errorf("stores were not closed: %v remain after serve stopped", wal)
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{strings.TrimSpace(string(token)), key} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log contains a token")
		}
	}

	t.Run("a restart on the same data dir keeps tenants and the token", func(t *testing.T) {
		url, _, stop := startServe(t, dataDir)
		r := runCLI(t, nil, "tenant", "show", "acme", "--addr", url, "--data-dir", dataDir)
		mustSucceed(t, r)
		again, err := os.ReadFile(tokenFile)
		if err != nil || !bytes.Equal(again, token) {
			t.Errorf("the operator token changed across a restart")
		}
		if code := stop(); code != 0 {
			t.Errorf("second serve exited with %d", code)
		}
	})
}

func TestServeRefusesATakenPort(t *testing.T) {
	url, _, _ := startServe(t, t.TempDir())
	r := runCLI(t, nil, "serve", "--addr", strings.TrimPrefix(url, "http://"), "--data-dir", t.TempDir())
	mustFail(t, r, 1, "address already in use", "--addr")
}

// walFiles lists the SQLite -wal files under dir.
func walFiles(t *testing.T, dir string) []string {
	t.Helper()
	var wal []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, "-wal") {
			wal = append(wal, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return wal
}

func TestServePolicyDir(t *testing.T) {
	pdir := t.TempDir()
	if err := os.WriteFile(filepath.Join(pdir, "broken.cedar"), []byte("permit ("), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--policy-dir", pdir},
		&out, &errb, mapEnv(nil))
	if code == 0 || !strings.Contains(errb.String(), "broken.cedar") {
		t.Fatalf("serve with a broken --policy-dir: exit %d, stderr:\n%s", code, errb.String())
	}
	if err := os.Remove(filepath.Join(pdir, "broken.cedar")); err != nil {
		t.Fatal(err)
	}
	url, _, stop := startServe(t, t.TempDir(), "--policy-dir", pdir)
	res, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestServeLimitsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "limits.json")
	if err := os.WriteFile(path, []byte(`{"tiers":{"nosuchtier":{}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--limits-file", path},
		&out, &errb, mapEnv(nil))
	if code == 0 || !strings.Contains(errb.String(), "nosuchtier") {
		t.Fatalf("serve with a bad --limits-file: exit %d, stderr:\n%s", code, errb.String())
	}
	if err := os.WriteFile(path, []byte(`{"tenants":{"acme":{"burst":40}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	url, _, stop := startServe(t, t.TempDir(), "--limits-file", path)
	res, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
