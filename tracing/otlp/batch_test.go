package otlp

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-dev/bulkhead/tracing/otlptest"
)

// memClient is an OTLP client that keeps in memory what it is asked to
// send, marshalled and decoded as the HTTP client and a receiver would:
// the batcher's tests run in a synctest bubble, where no real connection
// can be made (the tests beside them export over real HTTP). With gate
// set, each upload waits for the test to close it, as a collector that is
// slow to answer.
type memClient struct {
	gate chan struct{}

	mu    sync.Mutex
	spans int
}

func (*memClient) Start(context.Context) error { return nil }
func (*memClient) Stop(context.Context) error  { return nil }

func (c *memClient) UploadTraces(ctx context.Context, rs []*tracepb.ResourceSpans) error {
	raw, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rs})
	if err != nil {
		return err
	}
	if c.gate != nil {
		<-c.gate
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range req.ResourceSpans {
		for _, s := range r.ScopeSpans {
			c.spans += len(s.Spans)
		}
	}
	return nil
}

func (c *memClient) sent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.spans
}

// testProvider is the provider Setup makes, sampling every span, sending
// through client.
func testProvider(t *testing.T, client otlptrace.Client) *Provider {
	t.Helper()
	exp, err := newExporter(context.Background(), client, resource.Empty())
	if err != nil {
		t.Fatal(err)
	}
	tp := newTracerProvider(sdktrace.AlwaysSample(), sdktrace.NewSpanLimits(), newBatcher(exp))
	return &Provider{TracerProvider: tp, tp: tp}
}

// httpProvider is testProvider sending to rcv over OTLP/HTTP.
func httpProvider(t *testing.T, rcv *otlptest.Receiver) *Provider {
	t.Helper()
	return testProvider(t, otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(rcv.URL+"/v1/traces")))
}

func endSpans(p *Provider, n int) {
	for range n {
		_, s := p.Tracer("t").Start(context.Background(), "s")
		s.End()
	}
}

func TestBatcherExportsAFullBatchWithoutWaitingForTheDelay(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "3600000")
	synctest.Test(t, func(t *testing.T) {
		c := &memClient{}
		p := testProvider(t, c)
		endSpans(p, 3)
		synctest.Wait()
		if n := c.sent(); n != 0 {
			t.Fatalf("%d spans exported before a batch was full", n)
		}
		endSpans(p, 1)
		synctest.Wait()
		if n := c.sent(); n != 4 {
			t.Fatalf("%d spans exported once a batch was full, want 4", n)
		}
		endSpans(p, 2)
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := c.sent(); n != 6 {
			t.Fatalf("%d spans exported after Shutdown, want all 6", n)
		}
		_, s := p.Tracer("t").Start(context.Background(), "after")
		if s.IsRecording() {
			t.Error("a span started after Shutdown records")
		}
		s.End()
		if err := p.ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := c.sent(); n != 6 {
			t.Fatalf("a span ended after Shutdown was exported")
		}
	})
}

func TestBatcherExportsOnTheScheduleDelay(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "5000")
	synctest.Test(t, func(t *testing.T) {
		c := &memClient{}
		p := testProvider(t, c)
		defer p.Shutdown(context.Background())
		endSpans(p, 2)
		synctest.Wait()
		if n := c.sent(); n != 0 {
			t.Fatalf("%d spans exported at once", n)
		}
		time.Sleep(5001 * time.Millisecond) // past the delay (fake time)
		synctest.Wait()
		if n := c.sent(); n != 2 {
			t.Fatalf("%d spans exported after the delay, want 2", n)
		}
	})
}

// A collector that does not answer never blocks the spans' callers: what
// does not fit in the queue is dropped, and the error handler is told how
// many spans were.
func TestBatcherDropsRatherThanBlocks(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "3600000")
	var mu sync.Mutex
	var handled []string
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, err.Error())
	}))
	t.Cleanup(func() { otel.SetErrorHandler(prev) })

	c := &memClient{gate: make(chan struct{})}
	p := testProvider(t, c)
	endSpans(p, 100) // would hang here if ending a span waited for the exporter
	close(c.gate)
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := c.sent(); n == 0 || n >= 100 {
		t.Fatalf("%d of 100 spans exported: want some, and the overflow dropped", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(handled) == 0 || !strings.Contains(strings.Join(handled, "\n"), "spans dropped") {
		t.Errorf("the error handler heard %q, want the spans dropped", handled)
	}
}

// A span changed from many goroutines while others start and end spans
// of their own keeps every change, once, and every span is exported (run
// with -race).
func TestSpansAreSafeForConcurrentUse(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16")
	rcv := otlptest.NewReceiver(t)
	p := httpProvider(t, rcv)
	ctx, shared := p.Tracer("t").Start(context.Background(), "shared")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				shared.SetAttributes(attribute.Int(string(rune('a'+g)), i))
				shared.AddEvent("e")
				_, s := p.Tracer("t").Start(ctx, "child")
				s.SetAttributes(attribute.Int("i", i))
				s.End()
			}
		})
	}
	wg.Wait()
	shared.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rcv.Spans()
	if len(spans) != 8*50+1 {
		t.Fatalf("%d spans exported, want %d", len(spans), 8*50+1)
	}
	for _, s := range spans {
		if s.Name == "shared" {
			for g := range 8 {
				if v := s.Attributes[string(rune('a'+g))]; v != "49" {
					t.Errorf("attribute %c is %q, want the last value set, 49", 'a'+g, v)
				}
			}
			if len(s.Events) != 128 { // the default event limit; 400 were added
				t.Errorf("%d events kept, want 128", len(s.Events))
			}
		}
	}
}

// An export that fails is an error, and the batch is let go after it.
func TestExporterReportsFailure(t *testing.T) {
	clearEnv(t)
	ctx := context.Background()
	p := testProvider(t, otlptracehttp.NewClient(otlptracehttp.WithEndpointURL("http://127.0.0.1:1/v1/traces"),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false})))
	endSpans(p, 3)
	if err := p.ForceFlush(ctx); err == nil {
		t.Fatal("an export to a closed port succeeded")
	}
	if exp := p.tp.batch.exp; len(exp.buf) != 0 || len(exp.msgs[0].ProtoReflect().GetUnknown()) != 0 || p.tp.batch.cur.n != 0 {
		t.Errorf("after a failed export the batch is still held: %d bytes", len(exp.buf))
	}
	if err := p.ForceFlush(ctx); err != nil {
		t.Errorf("an empty flush: %v", err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// A span's record goes back to a pool when the span ends and is taken by
// the next span (of whichever tenant): nothing of the first may show in
// the second, whatever the first span's holder does with it afterwards.
func TestARecordReusedCarriesNothingOver(t *testing.T) {
	clearEnv(t)
	rcv := otlptest.NewReceiver(t)
	p := httpProvider(t, rcv)
	tr := p.Tracer("t")
	for range 50 {
		_, a := tr.Start(context.Background(), "acme")
		a.SetAttributes(attribute.String("bulkhead.tenant", "acme"), attribute.String("acme.secret", "acme-data"))
		a.AddEvent("acme-event", trace.WithAttributes(attribute.String("acme.event", "acme-data")))
		a.AddLink(trace.Link{SpanContext: a.SpanContext(), Attributes: []attribute.KeyValue{attribute.String("acme.link", "acme-data")}})
		a.End()
		_, b := tr.Start(context.Background(), "globex")
		// The holder of the ended span goes on using it while the
		// record it had serves the next span.
		a.SetAttributes(attribute.String("late", "acme-data"))
		a.AddEvent("late", trace.WithAttributes(attribute.String("late", "acme-data")))
		a.RecordError(errors.New("acme-data"))
		a.AddLink(trace.Link{SpanContext: a.SpanContext()})
		a.SetName("acme-data")
		a.End()
		b.SetAttributes(attribute.String("bulkhead.tenant", "globex"))
		b.End()
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rcv.Spans()
	if len(spans) != 100 {
		t.Fatalf("%d spans exported, want 100", len(spans))
	}
	for _, s := range spans {
		switch s.Name {
		case "globex":
			if len(s.Attributes) != 1 || s.Attributes["bulkhead.tenant"] != "globex" || len(s.Events) != 0 {
				t.Fatalf("globex's span carries %v, events %v", s.Attributes, s.Events)
			}
		case "acme":
			if len(s.Attributes) != 2 || s.Attributes["acme.secret"] != "acme-data" || len(s.Events) != 1 || s.Events[0] != "acme-event" {
				t.Fatalf("acme's span carries %v, events %v", s.Attributes, s.Events)
			}
		default:
			t.Fatalf("a span renamed after it ended: %q", s.Name)
		}
	}
	if rcv.Contains("late") || rcv.Contains("exception") {
		t.Error("what was done with a span after it ended was exported")
	}
}
