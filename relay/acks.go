package relay

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// acks routes JetStream's acknowledgements, which arrive through the
// publisher's ack and error handlers on the connection's read goroutine,
// to the batch each message belongs to. A batch learns that all its
// messages are answered once, not message by message: a PubAckFuture's
// Ok and Err channels cost two channels and a wake-up of the waiting
// goroutine per message.
type acks struct {
	mu    sync.Mutex
	batch map[*nats.Msg]*batch // messages published and not yet answered
}

func newAcks() *acks { return &acks{batch: map[*nats.Msg]*batch{}} }

// add registers m as b's before it is published (its ack may arrive
// before PublishMsgAsync returns).
func (a *acks) add(m *nats.Msg, b *batch) {
	b.pending.Add(1)
	a.mu.Lock()
	a.batch[m] = b
	a.mu.Unlock()
}

// take unregisters m and returns its batch, or nil if m is not (or no
// longer) registered: an answer for a message counts once.
func (a *acks) take(m *nats.Msg) *batch {
	a.mu.Lock()
	b := a.batch[m]
	if b != nil {
		delete(a.batch, m)
	}
	a.mu.Unlock()
	return b
}

// drop unregisters the batch's messages still awaiting an answer (its
// ack timeout passed): answers arriving later are ignored.
func (a *acks) drop(b *batch) {
	a.mu.Lock()
	for i := range b.msgs {
		if a.batch[&b.msgs[i]] == b {
			delete(a.batch, &b.msgs[i])
		}
	}
	a.mu.Unlock()
}

// onAck is the publisher's ack handler.
func (a *acks) onAck(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
	if b := a.take(m); b != nil {
		b.answered()
	}
}

// onErr is the publisher's error handler (a refusal, a timeout, a lost
// connection).
func (a *acks) onErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	if b := a.take(m); b != nil {
		b.fail(err)
		b.answered()
	}
}

// errPublish marks a batch one of whose messages could not be published.
var errPublish = errors.New("publish failed")

// answered counts one answer (or the publisher's hold) off the batch and
// closes all when none is left.
func (b *batch) answered() {
	if b.pending.Add(-1) == 0 {
		close(b.all)
	}
}

// fail records the batch's first failure.
func (b *batch) fail(err error) {
	b.failure.CompareAndSwap(nil, &err)
}

// failed returns the batch's first failure, or nil.
func (b *batch) failed() error {
	if p := b.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// batchAcks is what a batch keeps of its messages' answers.
type batchAcks struct {
	msgs    []nats.Msg    // the batch's messages (registered in acks while unanswered)
	pending atomic.Int64  // messages unanswered, plus one while publishing
	all     chan struct{} // closed when pending reaches zero
	failure atomic.Pointer[error]
}
