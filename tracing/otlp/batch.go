package otlp

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
)

// batcher collects ended spans, already encoded, and hands them to the
// exporter in batches, as the SDK's batch span processor does with its
// spans, but without waking its export goroutine for every span: ending a
// span encodes it into the current batch under a mutex, and only a full
// batch, the schedule delay or a flush wakes the exporter. It reads
// OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
// OTEL_BSP_MAX_QUEUE_SIZE and OTEL_BSP_EXPORT_TIMEOUT (milliseconds and
// counts, with the SDK's defaults). Spans beyond the queue are dropped,
// never waited for, and the error handler (otel.Handle) hears how many.
type batcher struct {
	exp     *exporter
	max     int
	delay   time.Duration
	timeout time.Duration

	mu       sync.Mutex
	cur      *batch   // guarded by mu
	free     []*batch // sent batches to reuse; guarded by mu
	stopped  bool     // guarded by mu
	dropped  int      // spans dropped; guarded by mu
	reported int      // of dropped, those told to the error handler; guarded by mu

	batches  chan *batch // full batches for the exporter
	flushes  chan chan error
	done     chan struct{}
	finished chan struct{}
	stopOnce sync.Once
}

// batch is spans encoded as ScopeSpans' spans fields, grouped by tracer.
type batch struct {
	chunks []chunk
	n      int // spans
}

type chunk struct {
	t   *tracer
	buf []byte
}

// add encodes s, with its record, into the chunk of its tracer.
func (b *batch) add(s *span, r *record) {
	i := 0
	for i < len(b.chunks) && b.chunks[i].t != s.t {
		i++
	}
	if i == len(b.chunks) {
		if len(b.chunks) < cap(b.chunks) { // reuse the buffer a chunk had
			b.chunks = b.chunks[:i+1]
			b.chunks[i].t = s.t
		} else {
			b.chunks = append(b.chunks, chunk{t: s.t})
		}
	}
	b.chunks[i].buf = appendSpan(b.chunks[i].buf, s, r)
	b.n++
}

// reset empties b, keeping its buffers unless they grew unusually large.
func (b *batch) reset() {
	for i := range b.chunks {
		b.chunks[i].t = nil
		b.chunks[i].buf = b.chunks[i].buf[:0]
		if cap(b.chunks[i].buf) > 4<<20 {
			b.chunks[i].buf = nil
		}
	}
	b.chunks, b.n = b.chunks[:0], 0
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil && n > 0 {
		return n
	}
	return def
}

func newBatcher(exp *exporter) *batcher {
	size := envInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
	queue := envInt("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
	size = min(size, queue)
	b := &batcher{
		exp: exp, max: size,
		delay:    time.Duration(envInt("OTEL_BSP_SCHEDULE_DELAY", 5000)) * time.Millisecond,
		timeout:  time.Duration(envInt("OTEL_BSP_EXPORT_TIMEOUT", 30000)) * time.Millisecond,
		cur:      &batch{},
		batches:  make(chan *batch, max(1, queue/size-1)),
		flushes:  make(chan chan error),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	go b.run()
	return b
}

// add encodes an ended, sampled span into the current batch, and hands
// the batch to the exporter once it is full.
func (b *batcher) add(s *span, r *record) {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return
	}
	b.cur.add(s, r)
	if b.cur.n < b.max {
		b.mu.Unlock()
		return
	}
	full := b.cur
	b.cur = b.fresh()
	b.mu.Unlock()
	select {
	case b.batches <- full:
	default: // the exporter is behind: drop rather than block a request
		b.mu.Lock()
		b.dropped += full.n
		b.recycle(full)
		b.mu.Unlock()
	}
}

// fresh returns an empty batch. b.mu must be held.
func (b *batcher) fresh() *batch {
	if n := len(b.free); n > 0 {
		bt := b.free[n-1]
		b.free = b.free[:n-1]
		return bt
	}
	return &batch{}
}

// recycle keeps bt for reuse. b.mu must be held.
func (b *batcher) recycle(bt *batch) {
	bt.reset()
	if len(b.free) < cap(b.batches)+1 {
		b.free = append(b.free, bt)
	}
}

// take returns the current batch, nil if it is empty.
func (b *batcher) take() *batch {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur.n == 0 {
		return nil
	}
	out := b.cur
	b.cur = b.fresh()
	return out
}

func (b *batcher) export(bt *batch) error {
	if bt == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	err := b.exp.send(ctx, bt)
	b.mu.Lock()
	b.recycle(bt)
	b.mu.Unlock()
	return err
}

// drain exports the queued batches and the current one.
func (b *batcher) drain() error {
	var first error
	for {
		select {
		case bt := <-b.batches:
			if err := b.export(bt); err != nil && first == nil {
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

// report tells the error handler of an export that failed, and of spans
// dropped since it last did.
func (b *batcher) report(err error) {
	if err != nil {
		otel.Handle(err)
	}
	b.mu.Lock()
	n := b.dropped - b.reported
	b.reported = b.dropped
	b.mu.Unlock()
	if n > 0 {
		otel.Handle(fmt.Errorf("traces export: %d spans dropped: the collector did not keep up "+
			"(check it, or raise OTEL_BSP_MAX_QUEUE_SIZE)", n))
	}
}

func (b *batcher) run() {
	defer close(b.finished)
	t := time.NewTicker(b.delay)
	defer t.Stop()
	for {
		select {
		case bt := <-b.batches:
			b.report(b.export(bt))
		case <-t.C:
			b.report(b.export(b.take()))
		case ch := <-b.flushes:
			ch <- b.drain()
		case <-b.done:
			b.report(b.drain())
			return
		}
	}
}

// ForceFlush exports what has ended and not yet been sent, and returns the
// first export's error.
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

// Shutdown exports what is left and stops: spans that end later are
// dropped. Only the first call does anything.
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
		err = b.exp.shutdown(ctx)
	})
	return err
}
