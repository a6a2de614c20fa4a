package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
)

// result is what one CLI run printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the CLI in-process with args and only the environment in env
// (never the test process's own).
func runCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, mapEnv(env))
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

func mapEnv(env map[string]string) lookupEnv {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// mustSucceed fails the test unless r exited 0 with nothing on stderr
// beyond allowed notes.
func mustSucceed(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// mustFail fails the test unless r exited with code and its stderr holds
// every one of want.
func mustFail(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not contain %q:\n%s", w, r.stderr)
		}
	}
}

// testServer is a real Bulkhead server (server.Open on a temp data dir)
// behind httptest on loopback.
type testServer struct {
	url     string // http://127.0.0.1:port
	dataDir string
	token   string // the operator token
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	return startServerWith(t, server.Options{})
}

// startServerWith is startServer with options; DataDir and Logger are set
// here.
func startServerWith(t *testing.T, opts server.Options) *testServer {
	t.Helper()
	dir := t.TempDir()
	opts.DataDir = dir
	opts.Logger = slog.New(slog.DiscardHandler)
	srv, err := server.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("server.Close: %v", err)
		}
	})
	token, err := server.ReadOperatorToken(dir)
	if err != nil {
		t.Fatalf("ReadOperatorToken: %v", err)
	}
	return &testServer{url: hs.URL, dataDir: dir, token: token}
}

// cli runs a client command against ts with explicit --addr and --token.
func (ts *testServer) cli(t *testing.T, args ...string) result {
	t.Helper()
	return runCLI(t, nil, append(args, "--addr", ts.url, "--token", ts.token)...)
}

// request sends a data-plane request with a tenant API key and returns the
// status and body.
func (ts *testServer) request(t *testing.T, method, path, token, body string, header ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// closedAddr returns a loopback host:port that nothing listens on, below
// the kernel's ephemeral range: a port that "127.0.0.1:0" gave and that
// was closed can be handed to the next listener on port 0, such as the
// server under test (a test of an unreachable Redis once found the
// server answering there).
func closedAddr(t *testing.T) string {
	t.Helper()
	low := 32768 // Linux's default start of the ephemeral range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	for port := low - 1 - rand.IntN(low/2); port > 1024; port-- {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // taken
		}
		ln.Close()
		return ln.Addr().String()
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tableRows splits a table printed by writeTable into trimmed cells per line.
func tableRows(s string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		rows = append(rows, strings.Fields(line))
	}
	return rows
}

// field returns the value printed for label by writeFields, or "".
func field(s, label string) string {
	for _, line := range strings.Split(s, "\n") {
		if rest, ok := strings.CutPrefix(line, label+":"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}
