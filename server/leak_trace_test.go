package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/tracing/otlp"
	"github.com/bulkhead-dev/bulkhead/tracing/otlptest"
)

// TestNoSecretOrRecordDataLeavesThroughTraces runs the leak traffic on a
// server that exports its spans over OTLP/HTTP to a real receiver, with
// W3C trace context on some requests (a tracestate holding a token too),
// and finds no secret and no record data in any exported byte.
func TestNoSecretOrRecordDataLeavesThroughTraces(t *testing.T) {
	rcv := otlptest.NewReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
	tp, err := otlp.Setup(context.Background(), otlp.Options{ServiceName: "bulkhead-leak-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	w := newLeakWorld(t, server.Options{TracerProvider: tp}, true)

	// Trace context from the client, carrying secrets where it may.
	e, op := w.e, w.e.op
	alpha, _ := e.createKey("alpha", "writer")
	w.secret.addToken("alpha's traced key", alpha)
	for _, hdr := range [][]string{
		{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate", "vendor=" + op},
		{"traceparent", "00-" + op[4:36] + "-00f067aa0ba902b7-01"},
		{"traceparent", op, "baggage", "user=" + w.secret.byLabel["e-mail address"]},
	} {
		r := e.req("PUT", "/v1/collections/notes/records/traced", alpha, `{"note":"`+w.secret.byLabel["record canary"]+`"}`, hdr...)
		if r.status != 200 && r.status != 201 {
			t.Fatalf("traced PUT: %d %s", r.status, r.body)
		}
	}
	w.scan(t)
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rcv.Spans()
	joined := false
	for _, s := range spans {
		joined = joined || s.TraceID == "4bf92f3577b34da6a3ce929d0e0e4736"
	}
	if len(spans) < 50 || !rcv.Contains("alpha") || !joined {
		t.Fatalf("%d spans exported (the client's trace joined: %v); the scan would prove nothing", len(spans), joined)
	}
	if leaks := w.secret.foundBy(rcv.Contains); len(leaks) > 0 {
		t.Errorf("the exported spans hold: %s", strings.Join(leaks, ", "))
		for _, s := range spans {
			for _, l := range leaks {
				v := w.secret.byLabel[strings.TrimSuffix(l, " (16 characters of it)")]
				if strings.Contains(s.TraceState+s.StatusMessage+s.Name+strings.Join(s.Events, " "), v) {
					t.Logf("%s in span %q: %+v", l, s.Name, s)
				}
				for k, a := range s.Attributes {
					if strings.Contains(a, v) {
						t.Logf("%s in span %q attribute %s", l, s.Name, k)
					}
				}
			}
		}
	}
}
