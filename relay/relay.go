package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/sched"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// More defaults of a Relay.
const (
	DefaultBatchSize       = 500
	DefaultRate            = 50_000 // events per second per tenant
	DefaultWorkers         = 8
	DefaultPipeline        = 8
	DefaultScanInterval    = 30 * time.Second
	DefaultAckTimeout      = 10 * time.Second
	DefaultDuplicateWindow = 2 * time.Minute
	retryDelay             = time.Second
)

// Store runs transactions of the tenant in the context; *store.Router is
// one.
type Store interface {
	Tx(ctx context.Context, fn func(*store.Tx) error) error
	ReadTx(ctx context.Context, fn func(*store.Tx) error) error
}

// Tenants is the registry the relay asks which tenants exist and since
// when; *catalog.Catalog is one.
type Tenants interface {
	// Incarnation returns the tenant's state and the instant its id was
	// last created, or an error wrapping catalog.ErrNotFound.
	Incarnation(ctx context.Context, id tenant.ID) (catalog.State, time.Time, error)
	// ListTenants returns up to limit tenants whose ids sort after after.
	ListTenants(ctx context.Context, after string, limit int) ([]catalog.Tenant, error)
}

// Options configures New.
type Options struct {
	// Conn is the NATS connection (required); the relay does not close it.
	Conn *nats.Conn
	// Store reads the outboxes and saves the relay's positions (required).
	Store Store
	// Tenants lists the tenants for the periodic scan and gives each
	// one's incarnation (required).
	Tenants Tenants
	// Stream is the JetStream stream (default DefaultStream). EnsureStream
	// creates it if missing, capturing <SubjectPrefix>.>.
	Stream string
	// SubjectPrefix is the first token(s) of every subject (default
	// DefaultSubjectPrefix).
	SubjectPrefix string
	// DuplicateWindow is the de-duplication window of a stream
	// EnsureStream creates (default DefaultDuplicateWindow). A message
	// published again after a crash is dropped as a duplicate only within
	// it: keep it longer than a restart takes.
	DuplicateWindow time.Duration
	// BatchSize bounds the events of one tenant's batch (default
	// DefaultBatchSize, at most store.MaxEventPage).
	BatchSize int
	// Rate bounds the events per second published for one tenant, with
	// bursts of Burst (defaults DefaultRate and one second's worth); a
	// negative Rate is no limit.
	Rate  float64
	Burst int
	// Workers is how many tenants' batches run at once (default
	// DefaultWorkers).
	Workers int
	// Pipeline is how many of one tenant's batches may await their acks
	// while the next is read (default DefaultPipeline).
	Pipeline int
	// ScanInterval is the pause between two scans of every tenant for
	// events no commit hook announced (another instance's commits, a
	// restart); default DefaultScanInterval, negative: no scans after the
	// one at start.
	ScanInterval time.Duration
	// AckTimeout bounds the wait for JetStream's acks of one batch
	// (default DefaultAckTimeout); a batch not acked in time is published
	// again.
	AckTimeout time.Duration
	// Weights gives each tenant's share of the relay under load (its
	// limits' Weight: by tier, with overrides); nil: 1 for every tenant.
	// Asked at every batch of the tenant (limits.Resolver caches).
	Weights limits.Source
	// Scheduler orders the tenants' batches; nil makes one whose weights
	// are Weights'. Give your own to make the router's
	// store.Config.EventsCommitted its Ready before the relay exists (its
	// own weights then apply, and Weights is ignored).
	Scheduler *sched.Scheduler
	// Metrics counts the relay's work (nil: not counted).
	Metrics *Metrics
	// Logger receives failures and skipped events (nil: discarded).
	Logger *slog.Logger
}

// Relay publishes every tenant's outbox events to JetStream, at least
// once, in each tenant's order. It is safe for concurrent use.
type Relay struct {
	opts Options
	js   jetstream.JetStream
	// streamHdr is the Nats-Expected-Stream header's value, shared by
	// every message (read-only).
	streamHdr []string
	ackr      *acks // routes the publisher's acks to batches
	sched     *sched.Scheduler
	log       *slog.Logger

	mu      sync.Mutex
	tenants map[tenant.ID]*tstate // guarded by mu
	acks    sync.WaitGroup        // ack goroutines
	weights sync.Map              // tenant.ID → int, from Options.Weights
}

// ErrOptions: Options lack something required or hold a bad value.
var ErrOptions = errors.New("relay: invalid options")

// New returns a Relay for opts. It does not touch NATS yet: EnsureStream
// and Run do.
func New(opts Options) (*Relay, error) {
	if opts.Conn == nil || opts.Store == nil || opts.Tenants == nil {
		return nil, fmt.Errorf("%w: Conn, Store and Tenants are required", ErrOptions)
	}
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if err := checkToken(opts.Stream); err != nil {
		return nil, fmt.Errorf("%w: stream name: %w", ErrOptions, err)
	}
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = DefaultSubjectPrefix
	}
	if err := checkPrefix(opts.SubjectPrefix); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.BatchSize < 1 || opts.BatchSize > store.MaxEventPage {
		return nil, fmt.Errorf("%w: BatchSize must be 1 to %d, not %d", ErrOptions, store.MaxEventPage, opts.BatchSize)
	}
	if opts.Rate == 0 {
		opts.Rate = DefaultRate
	}
	if opts.Burst <= 0 {
		opts.Burst = max(int(opts.Rate), opts.BatchSize)
	}
	opts.Workers = orDefault(opts.Workers, DefaultWorkers)
	opts.Pipeline = orDefault(opts.Pipeline, DefaultPipeline)
	if opts.ScanInterval == 0 {
		opts.ScanInterval = DefaultScanInterval
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = DefaultAckTimeout
	}
	if opts.DuplicateWindow <= 0 {
		opts.DuplicateWindow = DefaultDuplicateWindow
	}
	maxPending := opts.Workers*opts.Pipeline*opts.BatchSize + opts.BatchSize
	ackr := newAcks()
	js, err := jetstream.New(opts.Conn, jetstream.WithPublishAsyncMaxPending(maxPending),
		jetstream.WithPublishAsyncAckHandler(ackr.onAck), jetstream.WithPublishAsyncErrHandler(ackr.onErr))
	if err != nil {
		return nil, fmt.Errorf("relay: jetstream: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Relay{opts: opts, js: js, ackr: ackr, streamHdr: []string{opts.Stream}, sched: opts.Scheduler, log: log, tenants: map[tenant.ID]*tstate{}}
	if r.sched == nil {
		r.sched = sched.New(sched.Options{Weight: r.weight})
	}
	return r, nil
}

// weight is the scheduler's weight of a tenant, as last read from
// Options.Weights (1 until then).
func (r *Relay) weight(id tenant.ID) int {
	if w, ok := r.weights.Load(id); ok {
		return w.(int)
	}
	return 1
}

// readWeight refreshes the tenant's weight from Options.Weights.
func (r *Relay) readWeight(ctx context.Context, id tenant.ID) {
	if r.opts.Weights == nil {
		return
	}
	if l, err := r.opts.Weights.For(ctx, id); err == nil {
		r.weights.Store(id, max(l.Weight, 1))
	}
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// EnsureStream makes sure the stream exists: it creates it (subjects
// <prefix>.>, file storage, the duplicate window) if missing, and checks
// that an existing one captures the prefix.
func (r *Relay) EnsureStream(ctx context.Context) error {
	want := r.opts.SubjectPrefix + ".>"
	st, err := r.js.Stream(ctx, r.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = r.js.CreateStream(ctx, jetstream.StreamConfig{
			Name: r.opts.Stream, Subjects: []string{want}, Storage: jetstream.FileStorage,
			Duplicates: r.opts.DuplicateWindow,
		})
		if err != nil {
			return fmt.Errorf("relay: create stream %s (subjects %s): %w", r.opts.Stream, want, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("relay: stream %s: %w", r.opts.Stream, err)
	}
	for _, s := range st.CachedInfo().Config.Subjects {
		if s == want {
			return nil
		}
	}
	return fmt.Errorf("relay: stream %s exists but does not capture %s (its subjects: %v); add the subject or choose another stream",
		r.opts.Stream, want, st.CachedInfo().Config.Subjects)
}

// Notify marks the tenant as having new events; it never blocks. Give it
// to store.Config.EventsCommitted (or the Scheduler's Ready).
func (r *Relay) Notify(id tenant.ID) { r.sched.Ready(id) }

// Run ensures the stream, scans every tenant once, and relays until ctx
// ends: batches from the scheduler's workers, scans every ScanInterval.
// When ctx ends it waits for the acks of batches already published (at
// most AckTimeout) and saves the positions they reach, then returns nil;
// it returns early only if the stream cannot be ensured.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.EnsureStream(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { r.scanLoop(ctx) })
	wg.Go(func() {
		r.sched.Run(ctx, r.opts.Workers, r.step)
	})
	wg.Wait()
	r.acks.Wait()
	return nil
}

func (r *Relay) scanLoop(ctx context.Context) {
	for {
		if err := r.Scan(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("nats relay: tenant scan failed", slog.String("error", err.Error()))
		}
		if r.opts.ScanInterval < 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.opts.ScanInterval):
		}
	}
}

// Scan marks every tenant ready that could have events (all but those
// being provisioned or deleted); a tenant with nothing to publish costs
// one read.
func (r *Relay) Scan(ctx context.Context) error {
	after := ""
	for {
		page, err := r.opts.Tenants.ListTenants(ctx, after, 1000)
		if err != nil {
			return err
		}
		for _, t := range page {
			if t.State == catalog.Active || t.State == catalog.Suspended {
				r.sched.Ready(t.ID)
			}
		}
		if len(page) < 1000 {
			return nil
		}
		after = page[len(page)-1].ID.String()
	}
}
