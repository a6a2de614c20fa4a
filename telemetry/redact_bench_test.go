package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/telemetry"
)

// BenchmarkRedactor measures a typical request log line through a Redactor
// over slog's JSON handler against the plain JSON handler (the baseline:
// what a team writes without redaction). The two run in alternating
// batches of the same loop, so that a busy machine slows both alike; the
// metric x_plain is the ratio of their times per line.
func BenchmarkRedactor(b *testing.B) {
	plain := slog.New(slog.NewJSONHandler(io.Discard, nil))
	red := slog.New(telemetry.NewRedactor(slog.NewJSONHandler(io.Discard, nil), telemetry.RedactOptions{}))
	b.Run("clean_line", func(b *testing.B) { compareLoggers(b, plain, red) })
	// The worst common case: the line holds a token, so the record is
	// copied and a regexp runs.
	tok := "refused bk_abcdefghijklmnopqrs2_" + randB64(32)
	b.Run("line_with_token", func(b *testing.B) {
		compareLoggers(b, plain.With("detail", tok), red.With("detail", tok))
	})
	b.Run("line_with_token_each_time", func(b *testing.B) {
		// The token comes with each record rather than once in With.
		compareLoggers(b, plain, red, slog.String("detail", tok))
	})
}

func compareLoggers(b *testing.B, plain, red *slog.Logger, extra ...slog.Attr) {
	const batch = 64
	line := telemetry.LogRequestLine
	if len(extra) > 0 {
		line = func(l *slog.Logger) {
			l.LogAttrs(context.Background(), slog.LevelInfo, "http request", extra...)
			telemetry.LogRequestLine(l)
		}
	}
	var tPlain, tRed time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		for range batch {
			line(plain)
		}
		mid := time.Now()
		for range batch {
			line(red)
		}
		tPlain += mid.Sub(start)
		tRed += time.Since(mid)
	}
	b.ReportMetric(float64(tPlain.Nanoseconds())/float64(b.N*batch), "plain_ns/line")
	b.ReportMetric(float64(tRed.Nanoseconds())/float64(b.N*batch), "redacted_ns/line")
	b.ReportMetric(float64(tRed)/float64(tPlain), "x_plain")
}
