package otlp

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// gatedExporter is the SDK's in-memory exporter behind a gate the test
// opens, to stand for a collector that is slow to answer.
type gatedExporter struct {
	*tracetest.InMemoryExporter
	open chan struct{}
}

func (g gatedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	<-g.open
	return g.InMemoryExporter.ExportSpans(ctx, spans)
}

// keptExporter is the in-memory exporter without its Shutdown, which
// forgets the spans.
type keptExporter struct{ *tracetest.InMemoryExporter }

func (keptExporter) Shutdown(context.Context) error { return nil }

func (g gatedExporter) Shutdown(context.Context) error { return nil }

func endSpans(tp *sdktrace.TracerProvider, n int) {
	for range n {
		_, s := tp.Tracer("t").Start(context.Background(), "s")
		s.End()
	}
}

func TestBatcherExportsAFullBatchWithoutWaitingForTheDelay(t *testing.T) {
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "3600000")
	synctest.Test(t, func(t *testing.T) {
		exp := keptExporter{tracetest.NewInMemoryExporter()}
		b := newBatcher(exp)
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
		endSpans(tp, 3)
		synctest.Wait()
		if n := len(exp.GetSpans()); n != 0 {
			t.Fatalf("%d spans exported before a batch was full", n)
		}
		endSpans(tp, 1)
		synctest.Wait()
		if n := len(exp.GetSpans()); n != 4 {
			t.Fatalf("%d spans exported once a batch was full, want 4", n)
		}
		endSpans(tp, 2)
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := len(exp.GetSpans()); n != 6 {
			t.Fatalf("%d spans exported after Shutdown, want all 6", n)
		}
		endSpans(tp, 1) // after Shutdown: dropped
		if n := len(exp.GetSpans()); n != 6 {
			t.Fatalf("a span ended after Shutdown was exported")
		}
	})
}

func TestBatcherExportsOnTheScheduleDelay(t *testing.T) {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "5000")
	synctest.Test(t, func(t *testing.T) {
		exp := keptExporter{tracetest.NewInMemoryExporter()}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(newBatcher(exp)))
		defer tp.Shutdown(context.Background())
		endSpans(tp, 2)
		synctest.Wait()
		if n := len(exp.GetSpans()); n != 0 {
			t.Fatalf("%d spans exported at once", n)
		}
		time.Sleep(5001 * time.Millisecond) // past the delay (fake time)
		synctest.Wait()
		if n := len(exp.GetSpans()); n != 2 {
			t.Fatalf("%d spans exported after the delay, want 2", n)
		}
	})
}

// A collector that does not answer never blocks the spans' callers: what
// does not fit in the queue is dropped.
func TestBatcherDropsRatherThanBlocks(t *testing.T) {
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "3600000")
	exp := gatedExporter{tracetest.NewInMemoryExporter(), make(chan struct{})}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(newBatcher(exp)))
	endSpans(tp, 100) // would hang here if ending a span waited for the exporter
	close(exp.open)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n == 0 || n >= 100 {
		t.Fatalf("%d of 100 spans exported: want some, and the overflow dropped", n)
	}
}
