package telemetry_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/telemetry"
)

// secretText is a value no built-in pattern matches: only a key rule can
// hide it.
const secretText = "s3cr3t-value-XYZ"

func randB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// bulkheadToken has the shape of catalog's tokens: prefix, a 20-character
// base32 key id, '_', a 43-character base64url secret.
func bulkheadToken(prefix string) string {
	return prefix + "abcdefghijklmnopqrs2" + "_" + randB64(32)
}

// testJWT has a JWT's shape: base64url JSON header and payload, a signature.
func testJWT() string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"EdDSA","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(`{"sub":"user-1","tenant":"acme","exp":1999999999}`)) + "." + randB64(64)
}

// logBoth logs with a plain JSON handler and with a Redactor over one, and
// returns both outputs.
func logBoth(t *testing.T, opts telemetry.RedactOptions, log func(*slog.Logger)) (plain, redacted string) {
	t.Helper()
	var p, r bytes.Buffer
	hopts := &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: noTime}
	log(slog.New(slog.NewJSONHandler(&p, hopts)))
	log(slog.New(telemetry.NewRedactor(slog.NewJSONHandler(&r, hopts), opts)))
	return p.String(), r.String()
}

// noTime drops the time, so that two handlers' lines compare equal.
func noTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// check fails unless the plain log shows secret (so the case tests
// something) and the redacted one hides it and shows marker.
func check(t *testing.T, plain, redacted, secret, marker string) {
	t.Helper()
	if !strings.Contains(plain, secret) {
		t.Fatalf("the case is void: the plain log does not show %q:\n%s", secret, plain)
	}
	if strings.Contains(redacted, secret) {
		t.Errorf("the redacted log shows %q:\n%s", secret, redacted)
	}
	if !strings.Contains(redacted, marker) {
		t.Errorf("the redacted log lacks the marker %q:\n%s", marker, redacted)
	}
}

func TestRedactorHidesEveryDefaultKey(t *testing.T) {
	for _, key := range telemetry.DefaultRedactKeys {
		variants := []string{key, strings.ToUpper(key), strings.ReplaceAll(key, "_", "-"), "x_" + key, "X-Upstream-" + key}
		for _, k := range variants {
			t.Run(k, func(t *testing.T) {
				plain, red := logBoth(t, telemetry.RedactOptions{}, func(l *slog.Logger) {
					l.Info("login", slog.String(k, secretText))
				})
				check(t, plain, red, secretText, `"[REDACTED]"`)
			})
		}
	}
}

func TestRedactorKeysMatchOnlyWholeTrailingWords(t *testing.T) {
	for _, k := range []string{"token_count", "operator_token_file", "tokens", "secretary", "path"} {
		plain, red := logBoth(t, telemetry.RedactOptions{}, func(l *slog.Logger) { l.Info("m", k, secretText) })
		if plain != red || !strings.Contains(red, secretText) {
			t.Errorf("key %q was redacted:\n%s", k, red)
		}
	}
}

func TestRedactorHidesConfiguredKeys(t *testing.T) {
	opts := telemetry.RedactOptions{Keys: []string{"SSN", "customer-note"}}
	plain, red := logBoth(t, opts, func(l *slog.Logger) {
		l.Info("m", "ssn", secretText+"1", "Customer_Note", secretText+"2", "billing.ssn", secretText+"3")
	})
	for i := 1; i <= 3; i++ {
		check(t, plain, red, fmt.Sprintf("%s%d", secretText, i), `"[REDACTED]"`)
	}
}

type credsValuer struct{ pw string }

func (c credsValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", "ann"), slog.String("password", c.pw))
}

type dbConfig struct {
	Host     string
	Password string
	Nested   map[string]any
}

type opaque struct{ hidden string }

func TestRedactorFollowsKeysIntoGroupsValuersMapsAndStructs(t *testing.T) {
	cases := map[string]func(*slog.Logger){
		"inside slog.Group": func(l *slog.Logger) {
			l.Info("m", slog.Group("req", slog.String("method", "GET"), slog.Group("hdr", slog.String("Cookie", secretText))))
		},
		"under WithGroup and With": func(l *slog.Logger) {
			l.WithGroup("db").With("password", secretText).Info("m")
		},
		"from a LogValuer": func(l *slog.Logger) { l.Info("m", "creds", credsValuer{secretText}) },
		"in an http.Header": func(l *slog.Logger) {
			l.Info("m", "headers", http.Header{"Authorization": {secretText}, "Accept": {"*/*"}})
		},
		"in a struct": func(l *slog.Logger) { l.Info("m", "cfg", dbConfig{Host: "db", Password: secretText}) },
		"deep in a map": func(l *slog.Logger) {
			l.Info("m", "cfg", dbConfig{Nested: map[string]any{"list": []any{map[string]any{"api_key": secretText}}}})
		},
		"a group whose key is sensitive": func(l *slog.Logger) {
			l.Info("m", slog.Group("credentials", slog.String("user", secretText)))
		},
		"under a WithGroup whose key is sensitive": func(l *slog.Logger) {
			l.WithGroup("secret").Info("m", "anything", secretText)
		},
		"in an inlined group": func(l *slog.Logger) {
			l.Info("m", slog.Group("", slog.String("token", secretText)))
		},
	}
	for name, log := range cases {
		t.Run(name, func(t *testing.T) {
			plain, red := logBoth(t, telemetry.RedactOptions{}, log)
			check(t, plain, red, secretText, `"[REDACTED]"`)
		})
	}
}

func TestRedactorHidesValuePatterns(t *testing.T) {
	email := "ann.lee+test@example.co.uk"
	jwt := testJWT()
	cases := []struct {
		name, secret, marker string
		text                 func(secret string) string
	}{
		{"tenant API key", bulkheadToken("bk_"), telemetry.RedactedToken, func(s string) string { return "key " + s + " refused" }},
		{"support agent token", bulkheadToken("bks_"), telemetry.RedactedToken, func(s string) string { return s }},
		{"analyst token", bulkheadToken("bka_"), telemetry.RedactedToken, func(s string) string { return "/v1/x/" + s }},
		{"operator token", "bko_" + randB64(32), telemetry.RedactedToken, func(s string) string { return s }},
		{"a token without its prefix", strings.TrimPrefix(bulkheadToken("bk_"), "bk_")[:50], telemetry.RedactedToken, func(s string) string { return "id=" + s }},
		{"a token cut short", "bk_" + randB64(9), telemetry.RedactedToken, func(s string) string { return `"` + s + `"` }},
		{"bearer credential", randB64(24), telemetry.RedactedBearer, func(s string) string { return "Authorization: Bearer " + s }},
		{"lowercase bearer", randB64(24), telemetry.RedactedBearer, func(s string) string { return "bearer   " + s }},
		{"JWT", jwt, telemetry.RedactedJWT, func(s string) string { return "jwt " + s + " expired" }},
		{"JWT payload alone", strings.Split(jwt, ".")[1], telemetry.RedactedJWT, func(s string) string { return "bad payload " + s }},
		{"e-mail address", email, telemetry.RedactedEmail, func(s string) string { return "to <" + s + ">" }},
		{"unicode e-mail address", "zoë@exämple.de", telemetry.RedactedEmail, func(s string) string { return s }},
		{"URL password", "hunter2pw", telemetry.RedactedUserinfo, func(s string) string { return "dial postgres://bulkhead:" + s + "@db.internal:5432/x" }},
		{"URL token user", "natstoken123", telemetry.RedactedUserinfo, func(s string) string { return "nats://" + s + "@127.0.0.1:4222" }},
		{"token in a query", "q1w2e3r4", "token=" + telemetry.Redacted, func(s string) string { return "GET /cb?state=1&access_token=" + s + "&x=2" }},
		{"password in a DSN", "pa55word", "password=" + telemetry.Redacted, func(s string) string { return "host=db user=app password=" + s + " sslmode=disable" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.text(tc.secret)
			for where, log := range map[string]func(*slog.Logger){
				"message":      func(l *slog.Logger) { l.Info(text) },
				"string value": func(l *slog.Logger) { l.Info("m", "detail", text) },
				"error value":  func(l *slog.Logger) { l.Info("m", "error", errors.New(text)) },
				"byte slice":   func(l *slog.Logger) { l.Info("m", "raw", []byte(text)) },
				"struct field": func(l *slog.Logger) { l.Info("m", "cfg", dbConfig{Host: text}) },
				"unexported":   func(l *slog.Logger) { l.Info("m", "v", opaque{hidden: text}) },
				"With":         func(l *slog.Logger) { l.With("detail", text).Info("m") },
			} {
				var p, r bytes.Buffer
				log(slog.New(slog.NewTextHandler(&p, nil))) // shows unexported fields and bytes as text
				log(slog.New(telemetry.NewRedactor(slog.NewJSONHandler(&r, nil), telemetry.RedactOptions{})))
				if !strings.Contains(p.String(), tc.secret) {
					t.Fatalf("%s: the case is void, the plain log lacks the secret:\n%s", where, p.String())
				}
				if strings.Contains(r.String(), tc.secret) || !strings.Contains(r.String(), tc.marker) {
					t.Errorf("%s: the secret is not replaced by %s:\n%s", where, tc.marker, r.String())
				}
			}
		})
	}
}

func TestRedactorHidesConfiguredPatterns(t *testing.T) {
	res, err := telemetry.CompileRedactPatterns([]string{`acct-[0-9]{8}`, `(?i)case-[a-z]{3}`})
	if err != nil {
		t.Fatal(err)
	}
	plain, red := logBoth(t, telemetry.RedactOptions{Patterns: res}, func(l *slog.Logger) {
		l.Info("paid from acct-12345678", "note", "CASE-xyz")
	})
	check(t, plain, red, "acct-12345678", "paid from [REDACTED]")
	check(t, plain, red, "CASE-xyz", `"note":"[REDACTED]"`)
}

func TestCompileRedactPatternsSaysWhatIsWrong(t *testing.T) {
	for _, p := range []string{"(", "", "a*"} {
		_, err := telemetry.CompileRedactPatterns([]string{"ok", p})
		if err == nil || p != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", p)) {
			t.Errorf("pattern %q: err %v", p, err)
		}
	}
}

func TestRedactorPassesCleanRecordsUnchanged(t *testing.T) {
	plain, red := logBoth(t, telemetry.RedactOptions{}, func(l *slog.Logger) {
		l.With("component", "api").WithGroup("http").Info("http request", "request_id", "9f86d081884c7d659a2feaa0c55ad015",
			"tenant", "acme", "route", "GET /v1/collections/{c}/records/{id}", "status", 200, "duration_ms", 1.25,
			slog.Group("peer", "addr", "127.0.0.1:5000"), "at", []int{1, 2})
	})
	if plain != red {
		t.Errorf("a clean record changed:\nplain    %s\nredacted %s", plain, red)
	}
}

func TestNewRedactorOverARedactorMergesRules(t *testing.T) {
	var buf bytes.Buffer
	res, _ := telemetry.CompileRedactPatterns([]string{`acct-[0-9]+`})
	inner := telemetry.NewRedactor(slog.NewJSONHandler(&buf, nil), telemetry.RedactOptions{Keys: []string{"ssn"}})
	outer := telemetry.NewRedactor(inner, telemetry.RedactOptions{Patterns: res})
	slog.New(outer).Info("acct-42 for ann@example.com", "ssn", secretText)
	out := buf.String()
	if strings.Contains(out, secretText) || strings.Contains(out, "acct-42") || strings.Contains(out, "ann@") {
		t.Errorf("merged rules missed something:\n%s", out)
	}
	if n := strings.Count(out, "[REDACTED]"); n != 2 {
		t.Errorf("%d plain markers, want 2 (a stack of two redactors would not change that, but a lost rule would):\n%s", n, out)
	}
}

func TestNewLoggerRedacts(t *testing.T) {
	var buf bytes.Buffer
	tok := bulkheadToken("bk_")
	telemetry.NewLogger(&buf, slog.LevelInfo).Info("key "+tok, "authorization", "Bearer "+tok)
	if strings.Contains(buf.String(), tok) {
		t.Errorf("NewLogger does not redact:\n%s", buf.String())
	}
}

func TestRedactorKeepsLevelsAndContext(t *testing.T) {
	var buf bytes.Buffer
	h := telemetry.NewRedactor(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}), telemetry.RedactOptions{})
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelError) {
		t.Error("Enabled does not follow the inner handler")
	}
	if h.WithGroup("") != h {
		t.Error("WithGroup(\"\") must return the handler itself")
	}
}
