package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/telemetry"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openPlainLogged opens a real server whose Options.Logger is slog's plain
// JSON handler (no redaction of its own), so that whatever redaction the
// log shows is the server's.
func openPlainLogged(t *testing.T, opts Options) (*Server, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	opts.DataDir = t.TempDir()
	opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, logs
}

// TestAPanicHoldingASecretIsLoggedRedacted panics, in the server's own
// middleware chain, with a value that holds the operator token and an
// e-mail address: the panic is logged (with its stack), the secrets are
// not.
func TestAPanicHoldingASecretIsLoggedRedacted(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableLogRedaction=%v", disable), func(t *testing.T) {
			s, logs := openPlainLogged(t, Options{DisableLogRedaction: disable})
			op, err := ReadOperatorToken(s.opts.DataDir)
			if err != nil {
				t.Fatal(err)
			}
			h := requestID(telemetry.Middleware(s.log, s.metrics)(s.recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				panic(fmt.Errorf("decode %q for ann.lee@example.com: %w", op, errors.ErrUnsupported))
			}))))
			ts := httptest.NewServer(h)
			defer ts.Close()
			res, err := http.Get(ts.URL + "/boom")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			l := logs.String()
			if res.StatusCode != 500 || !strings.Contains(l, "panic serving request") || !strings.Contains(l, "goroutine") {
				t.Fatalf("status %d; the panic is not logged with its stack:\n%s", res.StatusCode, l)
			}
			leaked := strings.Contains(l, op) || strings.Contains(l, "ann.lee@example.com")
			if leaked != disable {
				t.Errorf("secrets in the log: %v, want %v:\n%s", leaked, disable, l)
			}
			if !disable && (!strings.Contains(l, telemetry.RedactedToken) || !strings.Contains(l, telemetry.RedactedEmail)) {
				t.Errorf("the markers are missing:\n%s", l)
			}
		})
	}
}

// TestServerLogRedactsConfiguredKeysAndPatterns gives Options.LogRedactKeys
// and LogRedactPatterns and finds both applied to the server's logger
// (which every component receives) over a logger that redacts nothing.
func TestServerLogRedactsConfiguredKeysAndPatterns(t *testing.T) {
	s, logs := openPlainLogged(t, Options{LogRedactKeys: []string{"customer"}, LogRedactPatterns: []string{`acct-[0-9]{8}`}})
	s.Logger().Info("charged acct-12345678", "customer", "Ann Lee", "authorization", "Basic YW5uOnB3")
	s.Logger().WithGroup("db").Warn("dial failed", "error", errors.New("dial postgres://app:hunter2@db:5432/x"))
	l := logs.String()
	for _, secret := range []string{"acct-12345678", "Ann Lee", "YW5uOnB3", "hunter2"} {
		if strings.Contains(l, secret) {
			t.Errorf("the log shows %q:\n%s", secret, l)
		}
	}
	if s.log != s.Logger() || s.opts.Logger != s.log {
		t.Error("the server's components do not all get the redacting logger")
	}
}

func TestABadRedactPatternIsAnOptionError(t *testing.T) {
	_, err := Open(context.Background(), Options{DataDir: t.TempDir(), LogRedactPatterns: []string{"acct-("}})
	var oe *OptionError
	if !errors.As(err, &oe) || oe.Field != "LogRedactPatterns" || !strings.Contains(err.Error(), `"acct-("`) {
		t.Fatalf("err %v, want an OptionError naming LogRedactPatterns and the pattern", err)
	}
}
