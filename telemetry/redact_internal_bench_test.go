package telemetry

import (
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
