package main

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/bulkhead-dev/bulkhead/tracing/otlp"
)

// tracingFlushTimeout bounds how long serve waits at exit for the last
// spans to reach the collector.
const tracingFlushTimeout = 5 * time.Second

// setupTracing makes the server's TracerProvider from the OTEL_* variables
// (package tracing/otlp) and logs where it exports, or that tracing is
// off. Export failures (a collector that cannot be reached, spans dropped
// because it did not keep up) go to the log as warnings.
func setupTracing(ctx context.Context, logger *slog.Logger) (*otlp.Provider, error) {
	tp, err := otlp.Setup(ctx, otlp.Options{ServiceName: "bulkhead", ServiceVersion: readVersion().Version})
	if err != nil {
		return nil, err
	}
	if !tp.Enabled() {
		logger.Debug("tracing off (set OTEL_EXPORTER_OTLP_ENDPOINT to export spans)")
		return tp, nil
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("tracing: spans not exported", slog.String("error", err.Error()))
	}))
	logger.Info("tracing on: exporting spans over OTLP/HTTP", slog.String("endpoint", tp.Endpoint()))
	return tp, nil
}

// flushTracing sends the spans not yet exported, within
// tracingFlushTimeout, and stops the provider.
func flushTracing(tp *otlp.Provider, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), tracingFlushTimeout)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		logger.Warn("tracing: the last spans were not exported", slog.String("error", err.Error()))
	}
}
