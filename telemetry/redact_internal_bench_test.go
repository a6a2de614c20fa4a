package telemetry

import (
	"context"
	"log/slog"
	"testing"
)

var sink bool

func BenchmarkScrubClean(b *testing.B) {
	r := NewRedactor(slog.DiscardHandler, RedactOptions{}).rules
	for b.Loop() {
		for _, s := range []string{"9f86d081884c7d659a2feaa0c55ad015", "acme-corp", "GET /v1/collections/{c}/records/{id}", "GET", "web-7f3a2c:checkout"} {
			_, c := r.scrub(s)
			sink = sink || c
		}
	}
}

func BenchmarkSensitiveKeys(b *testing.B) {
	r := NewRedactor(slog.DiscardHandler, RedactOptions{}).rules
	for b.Loop() {
		for _, k := range []string{"request_id", "tenant", "route", "method", "status", "duration_ms", "bytes", "client_request_id"} {
			sink = sink || r.sensitive(k)
		}
	}
}

// nopHandler handles every record and does nothing with it.
type nopHandler struct{}

func (nopHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (nopHandler) Handle(context.Context, slog.Record) error { return nil }
func (h nopHandler) WithAttrs([]slog.Attr) slog.Handler      { return h }
func (h nopHandler) WithGroup(string) slog.Handler           { return h }

// LogRequestLine logs the line the request-log middleware writes for a
// typical data-plane request (the package's benchmarks, inside and out).
func LogRequestLine(l *slog.Logger) {
	l.LogAttrs(context.Background(), slog.LevelInfo, "http request",
		slog.String("request_id", "9f86d081884c7d659a2feaa0c55ad015"),
		slog.String("tenant", "acme-corp"),
		slog.String("route", "GET /v1/collections/{c}/records/{id}"),
		slog.String("method", "GET"),
		slog.Int("status", 200),
		slog.Float64("duration_ms", 1.372),
		slog.Int64("bytes", 412),
		slog.String("client_request_id", "web-7f3a2c:checkout"))
}

func BenchmarkRedactorOverNop(b *testing.B) {
	l := slog.New(NewRedactor(nopHandler{}, RedactOptions{}))
	for b.Loop() {
		LogRequestLine(l)
	}
}

func BenchmarkNop(b *testing.B) {
	l := slog.New(nopHandler{})
	for b.Loop() {
		LogRequestLine(l)
	}
}
