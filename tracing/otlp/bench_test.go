package otlp_test

import (
	"context"
	"testing"

	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tracing"
	"github.com/bulkhead-dev/bulkhead/tracing/otlp"
	"github.com/bulkhead-dev/bulkhead/tracing/otlptest"
)

// BenchmarkSpan is what one span of Bulkhead's costs, exported: started,
// given a tenant and two attributes, ended, and sent by the batch span
// processor over OTLP/HTTP to a receiver in this process (which reads
// each export without decoding it), against a span with tracing off. The
// data plane's requests make five spans each (BenchmarkTracing in package
// server measures the whole).
func BenchmarkSpan(b *testing.B) {
	id := tenant.MustParse("acme")
	run := func(b *testing.B, tr *tracing.Tracer) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			c, span := tr.Start(ctx, "ingress.gate")
			tracing.SetTenant(c, id)
			if span.IsRecording() {
				span.SetAttributes(tracing.ActionKey.String("record.read"), tracing.DecisionKey.String("deny"))
			}
			span.End()
		}
	}
	b.Run("off", func(b *testing.B) { run(b, tracing.NewTracer(nil)) })
	b.Run("exported", func(b *testing.B) {
		otlp.ClearEnv(b)
		rcv := otlptest.NewReceiver(b)
		rcv.Discard()
		b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
		b.Setenv("OTEL_TRACES_SAMPLER", "always_on")
		tp, err := otlp.Setup(context.Background(), otlp.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer tp.Shutdown(context.Background())
		run(b, tracing.NewTracer(tp))
		if err := tp.ForceFlush(context.Background()); err != nil {
			b.Fatal(err)
		}
	})
}
