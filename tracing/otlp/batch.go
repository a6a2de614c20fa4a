package otlp

import (
	"context"
	"os"
	"strconv"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// batcher is a span processor that exports ended spans in batches, as the
// SDK's batch span processor does, but without waking its export goroutine
// for every span: ending a span appends it to a buffer under a mutex, and
// only a full batch, the schedule delay or a flush hands spans to the
// exporter. (The SDK's processor sends each span through a channel to its
// goroutine; on a busy server that is a goroutine wake-up per span.) It
// reads OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
// OTEL_BSP_MAX_QUEUE_SIZE and OTEL_BSP_EXPORT_TIMEOUT (milliseconds and
// counts, with the SDK's defaults). Spans beyond the queue are dropped, never
// waited for.
type batcher struct {
	exp     sdktrace.SpanExporter
	max     int
	delay   time.Duration
	timeout time.Duration

	mu      sync.Mutex
	buf     []sdktrace.ReadOnlySpan // guarded by mu
	stopped bool                    // guarded by mu

	batches  chan []sdktrace.ReadOnlySpan // full batches for the exporter
	flushes  chan chan error
	done     chan struct{}
	finished chan struct{}
	stopOnce sync.Once
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}

func newBatcher(exp sdktrace.SpanExporter) *batcher {
	size := envInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
	queue := envInt("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
	size = min(size, queue)
	b := &batcher{
		exp: exp, max: size,
		delay:    time.Duration(envInt("OTEL_BSP_SCHEDULE_DELAY", 5000)) * time.Millisecond,
		timeout:  time.Duration(envInt("OTEL_BSP_EXPORT_TIMEOUT", 30000)) * time.Millisecond,
		buf:      make([]sdktrace.ReadOnlySpan, 0, size),
		batches:  make(chan []sdktrace.ReadOnlySpan, max(1, queue/size-1)),
		flushes:  make(chan chan error),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	go b.run()
	return b
}

// OnStart does nothing.
func (b *batcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span; a full batch goes to the exporter, or is
// dropped if the exporter is that far behind.
func (b *batcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return
	}
	b.buf = append(b.buf, s)
	if len(b.buf) < b.max {
		b.mu.Unlock()
		return
	}
	full := b.buf
	b.buf = make([]sdktrace.ReadOnlySpan, 0, b.max)
	b.mu.Unlock()
	select {
	case b.batches <- full:
	default: // the exporter is behind: drop rather than block a request
	}
}

func (b *batcher) take() []sdktrace.ReadOnlySpan {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) == 0 {
		return nil
	}
	out := b.buf
	b.buf = make([]sdktrace.ReadOnlySpan, 0, b.max)
	return out
}

func (b *batcher) export(spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	return b.exp.ExportSpans(ctx, spans)
}

// drain exports every queued batch and the buffer.
func (b *batcher) drain() error {
	var first error
	for {
		select {
		case spans := <-b.batches:
			if err := b.export(spans); err != nil && first == nil {
				first = err
			}
		default:
			if err := b.export(b.take()); err != nil && first == nil {
				first = err
			}
			return first
		}
	}
}

func (b *batcher) run() {
	defer close(b.finished)
	t := time.NewTicker(b.delay)
	defer t.Stop()
	for {
		select {
		case spans := <-b.batches:
			_ = b.export(spans) // the exporter reports its failures to otel's error handler
		case <-t.C:
			_ = b.export(b.take())
		case ch := <-b.flushes:
			ch <- b.drain()
		case <-b.done:
			_ = b.drain()
			return
		}
	}
}

// ForceFlush exports every span that has ended.
func (b *batcher) ForceFlush(ctx context.Context) error {
	ch := make(chan error, 1)
	select {
	case b.flushes <- ch:
	case <-b.finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is left and shuts the exporter down; spans ended
// later are dropped.
func (b *batcher) Shutdown(ctx context.Context) error {
	var err error
	b.stopOnce.Do(func() {
		b.mu.Lock()
		b.stopped = true
		b.mu.Unlock()
		close(b.done)
		select {
		case <-b.finished:
		case <-ctx.Done():
			err = ctx.Err()
			return
		}
		err = b.exp.Shutdown(ctx)
	})
	return err
}
