package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tracing"
)

// Placements tells the Router where a tenant lives. The catalog implements
// it; an unknown or departing tenant yields an error wrapping
// ErrUnknownTenant.
type Placements interface {
	Placement(ctx context.Context, id tenant.ID) (Placement, error)
}

// Config configures a Router.
type Config struct {
	Placements Placements
	// Backends maps shard names to backends.
	Backends map[string]Backend
	// CursorKey authenticates list cursors (at least 32 bytes, kept secret
	// and stable across restarts). It is needed only to list records
	// (Tx.List): a router without one does everything else, and its List
	// fails with ErrNoCursorKey.
	CursorKey []byte
	// Now returns the time stamped on records; time.Now if nil.
	Now func() time.Time
	// Quotas gives each tenant's record and byte quotas, checked inside
	// the write transaction on backends that keep usage (UsageTx). Nil: no
	// quotas.
	Quotas Quotas
	// Sealer encrypts record data at rest with each tenant's own keys
	// (package keys). Nil: data is stored in the clear.
	Sealer Sealer
	// NoEvents turns the transactional outbox off: writes append no
	// events (see Event). By default every write and delete on a backend
	// with an outbox (EventTx) appends one in its transaction.
	NoEvents bool
	// EventData says which tenants' events carry the record's data. Nil:
	// no event carries data.
	EventData EventData
	// EventsCommitted, if set, is called after a transaction that appended
	// events has committed, with its tenant: a change feed or a relay
	// wakes up on it rather than polling. It must not block.
	EventsCommitted func(tenant.ID)
	// TracerProvider traces every transaction as a span (see trace.go).
	// Nil: the global provider, which traces nothing until a program sets
	// one; tracing that is off costs no allocation.
	TracerProvider trace.TracerProvider
}

// ErrNoCursorKey reports a List on a Router made without a cursor key:
// list cursors are authenticated with that key, so a router that lists
// needs one (Config.CursorKey).
var ErrNoCursorKey = errors.New("the router has no cursor key to authenticate list cursors (give the router a secret key of at least 32 bytes, stable across restarts)")

// Router opens tenant-scoped transactions on the backend that hosts the
// tenant in the context. It is safe for concurrent use.
type Router struct {
	placements Placements
	backends   map[string]Backend
	cursors    *CursorCodec
	now        func() time.Time
	quotas     Quotas
	sealer     Sealer
	noEvents   bool
	eventData  EventData
	committed  func(tenant.ID)
	tracer     *tracing.Tracer
}

// NewRouter returns a Router for cfg.
func NewRouter(cfg Config) (*Router, error) {
	if cfg.Placements == nil {
		return nil, errors.New("store: Config.Placements is required")
	}
	if len(cfg.Backends) == 0 {
		return nil, errors.New("store: at least one backend is required")
	}
	var codec *CursorCodec
	if cfg.CursorKey != nil {
		var err error
		if codec, err = NewCursorCodec(cfg.CursorKey); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	b := make(map[string]Backend, len(cfg.Backends))
	for name, be := range cfg.Backends {
		b[name] = be
	}
	return &Router{placements: cfg.Placements, backends: b, cursors: codec, now: now, quotas: cfg.Quotas, sealer: cfg.Sealer,
		noEvents: cfg.NoEvents, eventData: cfg.EventData, committed: cfg.EventsCommitted,
		tracer: tracing.NewTracer(cfg.TracerProvider)}, nil
}

// Shards returns the names of the router's shards, sorted.
func (r *Router) Shards() []string {
	names := make([]string, 0, len(r.backends))
	for n := range r.backends {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (r *Router) backend(p Placement) (Backend, error) {
	b, ok := r.backends[p.Shard]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownShard, p.Shard)
	}
	return b, nil
}

// Supports reports whether placement p can be hosted: the shard exists and
// its backend supports the mode.
func (r *Router) Supports(p Placement) error {
	if _, err := ParseMode(string(p.Mode)); err != nil {
		return err
	}
	b, err := r.backend(p)
	if err != nil {
		return err
	}
	return b.Supports(p.Mode)
}

// Provision prepares storage for tenant id at placement p. It is a
// control-plane operation and takes the tenant explicitly.
func (r *Router) Provision(ctx context.Context, id tenant.ID, p Placement) error {
	if id.IsZero() {
		return tenant.ErrMissing
	}
	if err := r.Supports(p); err != nil {
		return err
	}
	b, _ := r.backend(p)
	return b.Provision(ctx, id, p.Mode)
}

// Drop removes all data of tenant id at placement p. It is a control-plane
// operation and takes the tenant explicitly.
func (r *Router) Drop(ctx context.Context, id tenant.ID, p Placement) error {
	if id.IsZero() {
		return tenant.ErrMissing
	}
	b, err := r.backend(p)
	if err != nil {
		return err
	}
	return b.Drop(ctx, id, p.Mode)
}

// Ping checks every backend.
func (r *Router) Ping(ctx context.Context) error {
	for _, name := range r.Shards() {
		if err := r.backends[name].Ping(ctx); err != nil {
			return fmt.Errorf("shard %s: %w", name, err)
		}
	}
	return nil
}

// Close closes every backend.
func (r *Router) Close() error {
	var errs []error
	for _, name := range r.Shards() {
		if err := r.backends[name].Close(); err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// TxOptions configures a transaction.
type TxOptions struct {
	// ReadOnly transactions may not write; backends may serve them
	// concurrently with a writer.
	ReadOnly bool
	// SQL opens the transaction on a backend that can also run the team's
	// own SQL in it (SQLBackend): Tx.SQL gives the engine's handle.
	SQL bool
	// Replica lets a ReadOnly transaction (without SQL) be served by a
	// read replica of the tenant's shard (ReplicaBackend), which may not
	// have the latest writes yet unless ctx carries a read-after token
	// (WithReadAfter). Without it, reads go to the primary.
	Replica bool
}

// Begin opens a transaction for the tenant in ctx. Without a tenant in ctx
// it fails with tenant.ErrMissing; it never opens an unscoped transaction.
func (r *Router) Begin(ctx context.Context, opts TxOptions) (*Tx, error) {
	span := r.startTx(ctx)
	tx, err := r.begin(ctx, opts, span)
	if err != nil {
		beginFailed(ctx, span, err)
		return nil, err
	}
	return tx, nil
}

func (r *Router) begin(ctx context.Context, opts TxOptions, span trace.Span) (*Tx, error) {
	sc, err := r.Resolve(ctx)
	if err != nil {
		return nil, err
	}
	var seal TenantSealer
	if r.sealer != nil {
		if seal, err = r.sealer.ForTenant(ctx, sc.Tenant); err != nil {
			return nil, fmt.Errorf("begin: tenant keys: %w", err)
		}
	}
	describeTx(span, sc, opts)
	after, err := r.checkReadAfter(ctx, sc)
	if err != nil {
		return nil, err
	}
	var btx BackendTx
	switch {
	case opts.Replica && (!opts.ReadOnly || opts.SQL):
		return nil, errReplicaOptions
	case opts.Replica:
		btx, err = r.beginRead(ctx, sc, after)
	default:
		btx, err = beginBackend(ctx, sc, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &Tx{r: r, tenant: sc.Tenant, shard: sc.Placement.Shard, btx: btx, readOnly: opts.ReadOnly, seal: seal, span: span,
		askedReplica: opts.Replica && isReplicaBackend(sc.backend)}, nil
}

// Tx runs fn in a read-write transaction for the tenant in ctx, committing
// if fn returns nil and rolling back otherwise (also when fn panics).
func (r *Router) Tx(ctx context.Context, fn func(*Tx) error) error {
	return r.Run(ctx, TxOptions{}, fn)
}

// ReadTx runs fn in a read-only transaction for the tenant in ctx.
func (r *Router) ReadTx(ctx context.Context, fn func(*Tx) error) error {
	return r.Run(ctx, TxOptions{ReadOnly: true}, fn)
}

// Run runs fn in a transaction with opts for the tenant in ctx, committing
// if fn returns nil and rolling back otherwise (also when fn panics).
func (r *Router) Run(ctx context.Context, opts TxOptions, fn func(*Tx) error) (err error) {
	tx, err := r.Begin(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		tx.failed(err)
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// newRecordID returns a server-made opaque record id: 128 random bits,
// lowercase base32 (26 characters).
func newRecordID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return recordIDEncoding.EncodeToString(b[:])
}

var recordIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Scope is where the tenant of a context lives, as the Router resolves it.
// It names the backend's shard but does not hand out the backend: every
// tenant transaction goes through the Router (Begin, Run, Tx, ReadTx).
type Scope struct {
	Tenant    tenant.ID
	Placement Placement
	backend   Backend
}

// Resolve returns the scope of the tenant in ctx: its placement. Like Begin
// it fails with tenant.ErrMissing without a tenant in ctx, and with an error
// wrapping ErrUnknownTenant for a tenant without a placement.
func (r *Router) Resolve(ctx context.Context) (Scope, error) {
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return Scope{}, err
	}
	p, err := r.placements.Placement(ctx, id)
	if err != nil {
		return Scope{}, err
	}
	b, err := r.backend(p)
	if err != nil {
		return Scope{}, err
	}
	return Scope{Tenant: id, Placement: p, backend: b}, nil
}
