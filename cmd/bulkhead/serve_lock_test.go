package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
)

// binary is the bulkhead command built once for the tests that run it as
// a separate process.
var binary struct {
	once sync.Once
	path string
	err  error
}

// buildBinary builds ./cmd/bulkhead into a temporary directory, once per
// test run, and returns its path. Inside a git work tree the binary is
// stamped with the revision, as a release build is (whatever GOFLAGS says).
func buildBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "bulkhead-bin-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "bulkhead")
		out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", binary.path, ".").CombinedOutput()
		if err != nil {
			binary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// serveProcess is a `bulkhead serve` running as its own process.
type serveProcess struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan error
}

// startServeProcess runs the built binary's serve on a free loopback port
// with dataDir and the extra flags, and waits until it listens.
func startServeProcess(t *testing.T, dataDir string, extra ...string) *serveProcess {
	t.Helper()
	p := &serveProcess{logs: &syncBuffer{}, done: make(chan error, 1)}
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, extra...)
	p.cmd = exec.Command(buildBinary(t), args...)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second): // a hang guard
			_ = p.cmd.Process.Kill()
		}
	})
	deadline := time.After(60 * time.Second)
	for listeningAddr(p.logs.String()) == "" {
		select {
		case err := <-p.done:
			t.Fatalf("serve exited (%v) before listening; log:\n%s", err, p.logs.String())
		case <-deadline:
			t.Fatalf("serve did not log its address; log:\n%s", p.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return p
}

// secondServeFails runs a second serve process on dataDir and checks that
// it exits non-zero naming the first one's pid and start time.
func secondServeFails(t *testing.T, first *serveProcess, dataDir string, extra ...string) {
	t.Helper()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("a second serve on the same data dir: %v, exit %d; stderr:\n%s",
			err, cmd.ProcessState.ExitCode(), stderr.String())
	}
	for _, want := range []string{"data directory is in use", "serve.lock",
		fmt.Sprintf("pid %d", first.cmd.Process.Pid), "started "} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the second serve's error does not say %q:\n%s", want, stderr.String())
		}
	}
	if listeningAddr(stderr.String()) != "" {
		t.Errorf("the second serve listened before it was refused:\n%s", stderr.String())
	}
}

func TestASecondServeOnADataDirIsRefusedOnSQLite(t *testing.T) {
	dir := t.TempDir()
	first := startServeProcess(t, dir)
	secondServeFails(t, first, dir)

	// Once the first one stops, the directory is free again.
	if err := first.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := <-first.done; err != nil {
		t.Fatalf("the first serve: %v; log:\n%s", err, first.logs.String())
	}
	startServeProcess(t, dir)
}

func TestASecondServeOnADataDirIsRefusedOnPostgres(t *testing.T) {
	env := pgtest.New(t)
	pg := []string{"--postgres", env.ServeURL, "--postgres-admin", env.AdminURL}
	dir := t.TempDir()
	first := startServeProcess(t, dir, pg...)
	secondServeFails(t, first, dir, pg...)

	// Another instance on the same PostgreSQL with a data dir of its own
	// (holding copies of the same secrets and keyring) serves beside it.
	other := t.TempDir()
	for _, f := range []string{"operator.token", "cursor.key", "keyring"} {
		copyFile(t, filepath.Join(dir, f), filepath.Join(other, f))
	}
	startServeProcess(t, other, pg...)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, bufio.NewReader(src)); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
