package telemetry_test

import (
	"log/slog"
	"os"

	"github.com/bulkhead-dev/bulkhead/telemetry"
)

func ExampleNewRedactor() {
	patterns, err := telemetry.CompileRedactPatterns([]string{`acct-[0-9]{8}`})
	if err != nil {
		panic(err)
	}
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}
	log := slog.New(telemetry.NewRedactor(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: noTime}),
		telemetry.RedactOptions{Keys: []string{"ssn"}, Patterns: patterns}))
	log.Info("refund to acct-12345678 for ann@example.com",
		"ssn", "078-05-1120",
		"X-Api-Key", "k-123",
		"header", "Bearer bk_abcdefghijklmnopqrs2_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI",
		"tenant", "acme")
	// Output:
	// {"level":"INFO","msg":"refund to [REDACTED] for [REDACTED:email]","ssn":"[REDACTED]","X-Api-Key":"[REDACTED]","header":"Bearer [REDACTED:bearer]","tenant":"acme"}
}
