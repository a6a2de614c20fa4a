package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Handler handles one event. ctx names the event's tenant
// (tenant.WithID(ctx, ev.Tenant)): whatever the handler reads or writes
// through the store Router with it is that tenant's. An error makes the
// Dispatcher deliver the event again later, with backoff.
type Handler func(ctx context.Context, ev store.Event) error

// TxHandler handles one event inside a write transaction of the event's
// tenant, the one that also saves the consumer's position past the event:
// its writes and the position commit together or not at all, so the
// event's effects in the tenant's database happen exactly once. ctx names
// the event's tenant.
type TxHandler func(ctx context.Context, tx *store.Tx, ev store.Event) error

// Defaults of a Dispatcher.
const (
	// DefaultBatch is the most events one turn hands a consumer of one tenant.
	DefaultBatch = 100
	// DefaultPoll is the pause between two looks at every tenant's outbox.
	DefaultPoll = 10 * time.Second
	// DefaultWorkers is how many tenants are handled at once.
	DefaultWorkers = 4
	// DefaultMinBackoff and DefaultMaxBackoff bound the pause before a
	// failed consumer of a tenant is tried again (doubling from the least).
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = time.Minute
)

// ErrForeignEvent: the outbox of one tenant gave an event naming another
// (a backend bug). The Dispatcher stops that consumer of the tenant rather
// than hand a handler a context for the wrong tenant.
var ErrForeignEvent = errors.New("outbox: an event names another tenant than the outbox it came from")

// DispatcherOptions configures NewDispatcher.
type DispatcherOptions struct {
	// Store runs the tenants' transactions; required.
	Store Store
	// Tenants lists the tenants Run looks at every Poll (events committed
	// while no Dispatcher ran are found so); required.
	Tenants Tenants
	// Batch bounds the events one turn hands a consumer of one tenant
	// (default DefaultBatch, at most store.MaxEventPage): a tenant with a
	// long backlog goes to the back of the queue after each batch, so the
	// others wait at most one batch each.
	Batch int
	// Poll is the pause between two looks at every tenant (default
	// DefaultPoll; Notify wakes a tenant at once in between). A look costs
	// one read transaction per consumer and tenant: with many tenants and
	// the router's EventsCommitted hook wired to Notify, a longer Poll
	// costs little.
	Poll time.Duration
	// Workers is how many tenants are handled at once (default
	// DefaultWorkers); one tenant is never handled by two workers.
	Workers int
	// MinBackoff and MaxBackoff bound the pause before a consumer whose
	// turn failed is tried again on that tenant (defaults DefaultMinBackoff,
	// DefaultMaxBackoff); other tenants and consumers go on meanwhile.
	MinBackoff, MaxBackoff time.Duration
	// Expired is called, with ctx naming the tenant, when consumer's
	// position fell behind a trim of the tenant's outbox
	// (store.ErrEventsExpired): it should catch up by other means (read
	// the records afresh). If it returns nil the consumer goes on from the
	// oldest event kept; an error retries later. Nil: the consumer skips
	// to the oldest event kept, with an error log and
	// bulkhead_outbox_dispatch_expired_total.
	Expired func(ctx context.Context, consumer string) error
	// Metrics counts the work (nil: not counted).
	Metrics *DispatchMetrics
	// Logger receives failures (nil: discarded).
	Logger *slog.Logger
	// Now is the clock of the backoff (time.Now if nil).
	Now func() time.Time
}

// consumer is one registered handler.
type consumer struct {
	name        string
	h           Handler
	txh         TxHandler
	collections []string
}

// Dispatcher runs registered consumers on every tenant's events: each
// consumer sees each tenant's events in Seq order, at least once, and its
// position is saved per tenant (Tx.SetEventOffset) in the tenant's own
// database, so a restart resumes where it stopped. It is safe for
// concurrent use. Several Dispatchers (processes) may run the same
// consumers: positions never move back, and an event may then be handled
// twice (a TxHandler's writes still commit once).
type Dispatcher struct {
	opts DispatcherOptions
	log  *slog.Logger

	mu        sync.Mutex
	consumers []*consumer                // by name; guarded by mu, fixed once Run starts
	started   bool                       // guarded by mu
	queue     []tenant.ID                // tenants to handle, FIFO; guarded by mu
	state     map[tenant.ID]*tenantState // guarded by mu
	wake      chan struct{}              // a token: the queue may be non-empty
}

// tenantState is the scheduling state of one tenant; guarded by
// Dispatcher.mu.
type tenantState struct {
	queued, running, again bool
	retry                  map[string]retry // by consumer
	timer                  *time.Timer      // wakes the tenant for its next retry
}

type retry struct {
	attempts int
	at       time.Time
}

// NewDispatcher returns a Dispatcher for opts, with no consumers yet.
func NewDispatcher(opts DispatcherOptions) (*Dispatcher, error) {
	if opts.Store == nil || opts.Tenants == nil {
		return nil, errors.New("outbox: DispatcherOptions.Store and DispatcherOptions.Tenants are required")
	}
	if opts.Batch == 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Batch < 1 || opts.Batch > store.MaxEventPage {
		return nil, fmt.Errorf("outbox: Batch must be 1 to %d", store.MaxEventPage)
	}
	if opts.Poll == 0 {
		opts.Poll = DefaultPoll
	}
	if opts.Workers == 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.Poll < 0 || opts.Workers < 1 || opts.MinBackoff < 0 || opts.MaxBackoff < opts.MinBackoff {
		return nil, errors.New("outbox: Poll, Workers and the backoffs must be positive, MaxBackoff at least MinBackoff")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{opts: opts, log: log, state: map[tenant.ID]*tenantState{}, wake: make(chan struct{}, 1)}, nil
}

// Handle registers h as consumer name (the name its positions are saved
// under: ^[a-z][a-z0-9_]{0,62}$), for the events of collections only if
// any are given. Register every consumer before Run.
func (d *Dispatcher) Handle(name string, h Handler, collections ...string) error {
	if h == nil {
		return errors.New("outbox: nil handler")
	}
	return d.add(&consumer{name: name, h: h, collections: collections})
}

// HandleTx registers h as consumer name, run in the transaction that saves
// the consumer's position (see TxHandler); otherwise as Handle.
func (d *Dispatcher) HandleTx(name string, h TxHandler, collections ...string) error {
	if h == nil {
		return errors.New("outbox: nil handler")
	}
	return d.add(&consumer{name: name, txh: h, collections: collections})
}

func (d *Dispatcher) add(c *consumer) error {
	if store.ValidCollection(c.name) != nil {
		return fmt.Errorf("%w %q: use 1 to 63 characters of a-z, 0-9 and _, starting with a letter", store.ErrInvalidConsumer, c.name)
	}
	for _, coll := range c.collections {
		if err := store.ValidCollection(coll); err != nil {
			return fmt.Errorf("outbox: consumer %s: %w", c.name, err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started {
		return fmt.Errorf("outbox: consumer %s registered after Run started; register every consumer first", c.name)
	}
	i, found := slices.BinarySearchFunc(d.consumers, c.name, func(c *consumer, name string) int {
		return strings.Compare(c.name, name)
	})
	if found {
		return fmt.Errorf("outbox: consumer %s is registered twice", c.name)
	}
	d.consumers = slices.Insert(d.consumers, i, c)
	return nil
}

// Notify tells the Dispatcher that tenant id has new events; it never
// blocks, so it can be the Router's store.Config.EventsCommitted. It is
// safe on a nil *Dispatcher (a hook wired before the Dispatcher is made).
func (d *Dispatcher) Notify(id tenant.ID) {
	if d == nil || id.IsZero() {
		return
	}
	d.mu.Lock()
	d.enqueue(id)
	d.mu.Unlock()
}

// enqueue puts id at the back of the queue unless it is there already or
// being handled (then it is handled again after). d.mu is held.
func (d *Dispatcher) enqueue(id tenant.ID) {
	st := d.state[id]
	if st == nil {
		st = &tenantState{}
		d.state[id] = st
	}
	switch {
	case st.running:
		st.again = true
	case !st.queued:
		st.queued = true
		d.queue = append(d.queue, id)
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}
