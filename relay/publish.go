package relay

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// pubBatch publishes the events of one batch of one tenant. What the
// messages share is made once per batch: the tenant and incarnation header
// values, the subject of each collection. The msg ids (and the seq header
// values, their tails) are slices of one string; bodies, messages and
// header slices come from arrays allocated once per batch. Every message
// has its own header map, in which the Nats-Msg-Id and
// Nats-Expected-Stream headers are set directly (the publish options
// would allocate a slice for each value). A batch whose every message was
// acknowledged is reused, its messages, header maps (which always hold
// the same five keys) and buffers: JetStream keeps no message once it
// answered it. Nothing of a batch that failed is.
type pubBatch struct {
	evs      []store.Event
	tenant   []string // HeaderTenant's value, shared (read-only)
	inc      []string // HeaderIncarnation's value, shared (read-only)
	subjects map[string]string
	msgs     []nats.Msg
	ids      []string // each message's Nats-Msg-Id value: <tenant>.<incarnation>.<seq>
	seqs     []string // each message's HeaderSeq value: <seq>, the id's tail
	body     []byte   // every message's body, back to back
	ends     []int    // scratch: where each msg id ends
}

// pubBatches holds acknowledged batches for reuse.
var pubBatches sync.Pool

func (r *Relay) newPubBatch(id tenant.ID, inc time.Time, evs []store.Event) *pubBatch {
	incs := strconv.FormatInt(inc.UnixMicro(), 10)
	idBase := id.String() + "." + incs + "."
	size := 0
	for i := range evs {
		size += 160 + len(evs[i].Collection) + len(evs[i].ID) + len(evs[i].Data)
	}
	p, _ := pubBatches.Get().(*pubBatch)
	if p == nil {
		p = &pubBatch{subjects: make(map[string]string, 1)}
	}
	p.evs, p.tenant, p.inc = evs, []string{id.String()}, []string{incs}
	clear(p.subjects) // another tenant's, maybe
	p.msgs = grow(p.msgs, len(evs))
	p.ids, p.seqs, p.ends = grow(p.ids, len(evs)), grow(p.seqs, len(evs)), grow(p.ends, len(evs))
	if cap(p.body) < size {
		p.body = make([]byte, 0, size)
	}
	p.body = p.body[:0]
	buf := make([]byte, 0, len(evs)*(len(idBase)+20))
	ends := p.ends
	for i := range evs {
		buf = append(buf, idBase...)
		buf = strconv.AppendInt(buf, evs[i].Seq, 10)
		ends[i] = len(buf)
	}
	all, at := string(buf), 0
	for i, end := range ends {
		p.ids[i], p.seqs[i] = all[at:end], all[at+len(idBase):end]
		at = end
	}
	return p
}

// publish sends event i: subject <prefix>.<tenant>.<collection>,
// Nats-Msg-Id <tenant>.<incarnation>.<seq> (MsgID), the event JSON as body.
func (p *pubBatch) publish(r *Relay, b *batch, i int) error {
	ev := &p.evs[i]
	subj, ok := p.subjects[ev.Collection]
	if !ok {
		// The prefix was checked by New and tenant ids are safe by their
		// rule; the collection is checked here (Subject checks all three).
		if err := checkToken(ev.Collection); err != nil {
			return err
		}
		subj = r.opts.SubjectPrefix + "." + p.tenant[0] + "." + ev.Collection
		p.subjects[ev.Collection] = subj
	}
	start := len(p.body)
	body, err := encodeEvent(p.body, ev)
	if err != nil {
		return fmt.Errorf("encode event %d: %w", ev.Seq, err)
	}
	p.body = body
	m := &p.msgs[i]
	h := m.Header // a reused batch's: the same five keys, all set below
	if h == nil {
		h = make(nats.Header, 5)
	}
	h[HeaderTenant] = p.tenant
	h[HeaderSeq] = p.seqs[i : i+1 : i+1]
	h[HeaderIncarnation] = p.inc
	h[jetstream.MsgIDHeader] = p.ids[i : i+1 : i+1] // as jetstream.WithMsgID
	h[jetstream.ExpectedStreamHeader] = r.streamHdr // as jetstream.WithExpectStream
	*m = nats.Msg{Subject: subj, Data: body[start:len(body):len(body)], Header: h}
	r.ackr.add(m, b)
	if _, err := r.js.PublishMsgAsync(m); err != nil {
		if r.ackr.take(m) != nil {
			b.answered()
		}
		return err
	}
	return nil
}

// grow returns s with length n, reallocated if its capacity is short.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// recycle keeps p for another batch once JetStream acknowledged every one
// of its messages.
func (p *pubBatch) recycle() {
	p.evs = nil
	pubBatches.Put(p)
}
