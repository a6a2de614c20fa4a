package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/tracing/otlptest"
)

// serve exports traces where OTEL_EXPORTER_OTLP_ENDPOINT says, logs that
// endpoint, and sends the spans still queued when it stops.
func TestServeExportsTracesAndFlushesThemAtExit(t *testing.T) {
	rcv := otlptest.NewReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "3600000") // an hour: only the flush at exit exports
	url, logs, stop := startServe(t, filepath.Join(t.TempDir(), "data"))
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if code := stop(); code != 0 {
		t.Fatalf("serve exited with %d; log:\n%s", code, logs.String())
	}
	if !strings.Contains(logs.String(), `"endpoint":"`+rcv.URL+`/v1/traces"`) {
		t.Errorf("the log does not say where spans go:\n%s", logs.String())
	}
	found := false
	for _, s := range rcv.Spans() {
		if s.Name == "GET /healthz" && s.Resource["service.name"] == "bulkhead" {
			found = true
		}
	}
	if !found {
		t.Errorf("the request's span did not reach the receiver by the time serve stopped: %+v", rcv.Spans())
	}
}

func TestServeRefusesAnUnsupportedTracesExporter(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data")},
		&stdout, &stderr, mapEnv(nil))
	if code == 0 || !strings.Contains(stderr.String(), "OTEL_TRACES_EXPORTER") {
		t.Errorf("exit %d, stderr %q: want a failure naming OTEL_TRACES_EXPORTER", code, stderr.String())
	}
}
