package telemetry_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/telemetry"
)

// FuzzRedactorHidesTokens puts a Bulkhead token, a bearer credential and
// a JWT between arbitrary text, in the message and in a value, and checks
// that the log never shows the token's secret, whatever surrounds it.
func FuzzRedactorHidesTokens(f *testing.F) {
	f.Add("key ", " refused", "bk_", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI")
	f.Add("b", "", "bko_", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("\"", "\\", "bks_", "-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-")
	f.Add("bearer", "eyJ", "bka_", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")
	f.Fuzz(func(t *testing.T, before, after, prefix, secret string) {
		if !strings.HasPrefix(prefix, "bk") || len(secret) < 16 || strings.ContainsFunc(secret, notB64URL) {
			return
		}
		switch prefix {
		case "bk_", "bks_", "bka_", "bko_":
		default:
			return
		}
		tok := prefix + "abcdefghijklmnopqrs2_" + secret
		var buf bytes.Buffer
		l := slog.New(telemetry.NewRedactor(slog.NewJSONHandler(&buf, nil), telemetry.RedactOptions{}))
		l.Info(before+tok+after, "detail", before+"Bearer "+tok+after, "raw", []byte(before+tok+after))
		if strings.Contains(buf.String(), secret) {
			t.Fatalf("the secret shows:\n%s", buf.String())
		}
	})
}

func notB64URL(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
}

// FuzzRedactorNeverPanics logs arbitrary messages, keys and values.
func FuzzRedactorNeverPanics(f *testing.F) {
	f.Add("m", "token", "v")
	f.Add("a@b.co bearer x eyJabcd.e", "X-Api-Key", "password=1&bk_123456")
	f.Fuzz(func(t *testing.T, msg, key, value string) {
		var buf bytes.Buffer
		l := slog.New(telemetry.NewRedactor(slog.NewJSONHandler(&buf, nil), telemetry.RedactOptions{Keys: []string{key}}))
		l.WithGroup(key).With(key, value).Info(msg, slog.Group(key, key, value), "any", map[string]string{key: value})
	})
}
