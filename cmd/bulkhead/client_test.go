package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestUnreachableServerSaysHowToFix(t *testing.T) {
	addr := closedAddr(t)
	r := runCLI(t, nil, "tenant", "list", "--addr", addr, "--token", "x")
	want := "cannot reach bulkhead at http://" + addr + ": is `bulkhead serve` running? (set --addr or BULKHEAD_ADDR)"
	mustFail(t, r, 1, want)
}

func TestEnvFallback(t *testing.T) {
	ts := startServer(t)
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))

	t.Run("BULKHEAD_ADDR and BULKHEAD_TOKEN stand in for the flags", func(t *testing.T) {
		r := runCLI(t, map[string]string{"BULKHEAD_ADDR": ts.url, "BULKHEAD_TOKEN": ts.token}, "tenant", "list")
		mustSucceed(t, r)
		if !strings.Contains(r.stdout, "acme") {
			t.Errorf("list via env printed:\n%s", r.stdout)
		}
	})

	t.Run("BULKHEAD_ADDR may be host:port", func(t *testing.T) {
		hostPort := strings.TrimPrefix(ts.url, "http://")
		r := runCLI(t, map[string]string{"BULKHEAD_ADDR": hostPort, "BULKHEAD_TOKEN": ts.token}, "tenant", "show", "acme")
		mustSucceed(t, r)
	})

	t.Run("a flag wins over its variable", func(t *testing.T) {
		closed := closedAddr(t)
		r := runCLI(t, map[string]string{"BULKHEAD_ADDR": ts.url, "BULKHEAD_TOKEN": ts.token},
			"tenant", "list", "--addr", closed)
		mustFail(t, r, 1, "cannot reach bulkhead at http://"+closed)
	})

	t.Run("command flags are read from the environment too", func(t *testing.T) {
		mustSucceed(t, ts.cli(t, "tenant", "create", "globex"))
		r := runCLI(t, map[string]string{"BULKHEAD_ADDR": ts.url, "BULKHEAD_TOKEN": ts.token, "BULKHEAD_LIMIT": "1"},
			"tenant", "list")
		mustSucceed(t, r)
		if rows := tableRows(r.stdout); len(rows) != 2 {
			t.Errorf("BULKHEAD_LIMIT=1 listed %d rows:\n%s", len(rows)-1, r.stdout)
		}
	})

	t.Run("an invalid value in a variable is a usage error that names it", func(t *testing.T) {
		r := runCLI(t, map[string]string{"BULKHEAD_ADDR": ts.url, "BULKHEAD_TOKEN": ts.token, "BULKHEAD_LIMIT": "many"},
			"tenant", "list")
		mustFail(t, r, 2, "invalid BULKHEAD_LIMIT")
	})
}

func TestTokenFileFallback(t *testing.T) {
	ts := startServer(t)

	t.Run("--data-dir finds operator.token", func(t *testing.T) {
		r := runCLI(t, nil, "tenant", "create", "acme", "--addr", ts.url, "--data-dir", ts.dataDir)
		mustSucceed(t, r)
	})

	t.Run("BULKHEAD_DATA_DIR finds operator.token", func(t *testing.T) {
		r := runCLI(t, map[string]string{"BULKHEAD_ADDR": ts.url, "BULKHEAD_DATA_DIR": ts.dataDir}, "tenant", "show", "acme")
		mustSucceed(t, r)
	})

	t.Run("--token wins over the file", func(t *testing.T) {
		r := runCLI(t, nil, "tenant", "list", "--addr", ts.url, "--data-dir", ts.dataDir, "--token", "bk_wrong_token")
		mustFail(t, r, 1, "unauthenticated", "HTTP 401", "--token or BULKHEAD_TOKEN")
	})

	t.Run("no token anywhere says where to put one", func(t *testing.T) {
		r := runCLI(t, nil, "tenant", "list", "--addr", ts.url, "--data-dir", t.TempDir())
		mustFail(t, r, 1, "no operator token", "--token", "BULKHEAD_TOKEN", "--data-dir")
	})
}

func TestNonProblemErrorResponse(t *testing.T) {
	// A proxy in front of the server can answer with HTML; the real server
	// cannot, so this one case uses a stand-in.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte("<html>502 Bad Gateway</html>"))
	}))
	defer proxy.Close()
	r := runCLI(t, nil, "tenant", "list", "--addr", proxy.URL, "--token", "x")
	mustFail(t, r, 1, "unexpected HTTP 502", "502 Bad Gateway", "--addr")
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a missing argument is named", []string{"tenant", "show"}, "needs ID"},
		{"a missing second argument is named", []string{"key", "revoke", "acme"}, "missing KEY_ID"},
		{"too many arguments are refused", []string{"key", "revoke", "a", "b", "c"}, "takes TENANT KEY_ID"},
		{"an unknown flag is refused", []string{"tenant", "list", "--bogus"}, "unknown flag: --bogus"},
		{"an unknown subcommand is refused", []string{"tenant", "shwo"}, `unknown command "shwo" for "bulkhead tenant" (did you mean show?)`},
		{"an unknown command is refused", []string{"tenant", "bogus"}, `unknown command "bogus"`},
		{"serve takes no arguments", []string{"serve", "now"}, "takes no arguments"},
		{"serve needs at least one open database", []string{"serve", "--max-open-databases", "0"}, "at least 1"},
		{"serve refuses an unknown log level", []string{"serve", "--log-level", "loud"}, "debug, info, warn or error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustFail(t, runCLI(t, nil, tc.args...), 2, tc.want, "--help")
		})
	}
}

func TestHelpNamesEnvironmentVariables(t *testing.T) {
	r := runCLI(t, nil, "serve", "--help")
	mustSucceed(t, r)
	for _, v := range []string{"BULKHEAD_ADDR", "BULKHEAD_DATA_DIR", "BULKHEAD_MAX_OPEN_DATABASES"} {
		if !strings.Contains(r.stdout, v) {
			t.Errorf("serve --help does not mention %s:\n%s", v, r.stdout)
		}
	}
	r = runCLI(t, nil, "tenant", "delete", "--help")
	mustSucceed(t, r)
	if strings.Contains(r.stdout, "BULKHEAD_YES") {
		t.Errorf("--yes claims an environment variable:\n%s", r.stdout)
	}
}

func TestBaseURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:8080", "http://127.0.0.1:8080"},
		{":9000", "http://127.0.0.1:9000"},
		{"localhost:8080", "http://localhost:8080"},
		{"[::1]:8080", "http://[::1]:8080"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080"},
		{"https://bulkhead.example.com", "https://bulkhead.example.com"},
		{"https://example.com/bulkhead/", "https://example.com/bulkhead"},
	} {
		got, err := baseURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("baseURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "127.0.0.1", "ftp://x:21", "http://", "http://u:p@x:1", "http://x:1/?q=1"} {
		if got, err := baseURL(in); err == nil {
			t.Errorf("baseURL(%q) = %q, want an error", in, got)
		} else if !strings.Contains(err.Error(), "BULKHEAD_ADDR") {
			t.Errorf("baseURL(%q) error %q does not say how to fix it", in, err)
		}
	}
}

func TestListenAddress(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:8080", "127.0.0.1:8080"},
		{":0", ":0"},
		{"http://127.0.0.1:8080", "127.0.0.1:8080"},
		{"http://0.0.0.0:9000/", "0.0.0.0:9000"},
	} {
		got, err := listenAddress(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("listenAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"8080", "https://x:443", "http://x", "http://x:1/prefix"} {
		if got, err := listenAddress(in); err == nil {
			t.Errorf("listenAddress(%q) = %q, want an error", in, got)
		}
	}
}

func TestCellNeutralisesControlCharacters(t *testing.T) {
	if got := cell("a\tb\nc\x1b[31m"); got != "a?b?c?[31m" {
		t.Errorf("cell = %q", got)
	}
	if got := cell(""); got != "-" {
		t.Errorf("cell(\"\") = %q", got)
	}
}
