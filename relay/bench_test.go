package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/bulkhead-dev/bulkhead/relay"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// newStream makes a fresh stream with its own subject prefix (deleted
// when the benchmark ends).
func newStream(b *testing.B, e *env) (stream, prefix string) {
	b.Helper()
	stream, prefix = testStream(b, e.nc)
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{prefix + ".>"},
		Storage: jetstream.FileStorage, Duplicates: relay.DefaultDuplicateWindow}); err != nil {
		b.Fatal(err)
	}
	return stream, prefix
}

// BenchmarkRelayPublish: the relay publishing one tenant's 10,000 events
// already in the outbox (reading them from SQLite, encoding, async
// publish in pipelined batches, offsets saved) against the baseline: raw
// JetStream async publish of the same messages (same subjects, bodies,
// headers and msg ids), prepared in memory beforehand, to a fresh stream
// each time. Reported: events per second of each and their ratio.
func BenchmarkRelayPublish(b *testing.B) {
	const n = 10_000
	e := newEnv(b)
	acme := e.create(b, "acme", "")
	for range n / 1000 {
		e.write(b, acme, "orders", 1000)
	}
	ctx := tenant.WithID(context.Background(), acme)
	_, inc, err := e.fl.Catalog().Incarnation(ctx, acme)
	if err != nil {
		b.Fatal(err)
	}
	var evs []store.Event
	for after := int64(0); after < n; after = evs[len(evs)-1].Seq {
		err := e.fl.Router().ReadTx(ctx, func(tx *store.Tx) error {
			page, _, err := tx.Events(ctx, after, store.MaxEventPage, nil)
			evs = append(evs, page...)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	var relayTime, rawTime, relayCPU, rawCPU time.Duration
	var relayAllocs, rawAllocs uint64
	raw := func() {
		// Baseline: raw async publish of prepared messages.
		b.StopTimer()
		stream, prefix := newStream(b, e)
		msgs := make([]*nats.Msg, len(evs))
		for i := range evs {
			subj, _ := relay.Subject(prefix, acme, evs[i].Collection)
			body, _ := json.Marshal(&evs[i])
			msgs[i] = &nats.Msg{Subject: subj, Data: body, Header: nats.Header{
				relay.HeaderTenant: []string{acme.String()}, relay.HeaderSeq: []string{strconv.FormatInt(evs[i].Seq, 10)},
				relay.HeaderIncarnation: []string{strconv.FormatInt(inc.UnixMicro(), 10)},
				// What jetstream.WithMsgID and WithExpectStream would add,
				// added beforehand: the timed loop only publishes.
				jetstream.MsgIDHeader: []string{relay.MsgID(acme, inc, evs[i].Seq)}, jetstream.ExpectedStreamHeader: []string{stream}}}
		}
		rawJS, err := jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(relay.DefaultWorkers*relay.DefaultPipeline*relay.DefaultBatchSize+relay.DefaultBatchSize))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0, c0, a0 := time.Now(), cpuTime(), mallocs()
		for _, m := range msgs {
			if _, err := rawJS.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
		}
		<-rawJS.PublishAsyncComplete()
		rawTime += time.Since(t0)
		rawCPU += cpuTime() - c0
		rawAllocs += mallocs() - a0
		b.StopTimer()
		if got := streamMsgs(b, e, stream); got != n {
			b.Fatalf("baseline stream holds %d messages", got)
		}
		b.StartTimer()
	}
	viaRelay := func() {
		// The relay, from offset 0, to a fresh stream.
		b.StopTimer()
		stream, prefix := newStream(b, e)
		err := e.fl.Router().Tx(ctx, func(tx *store.Tx) error { return tx.SetEventOffset(ctx, relay.Consumer, 0) })
		if err != nil {
			b.Fatal(err)
		}
		e.reg = prometheus.NewRegistry()
		opts := e.options()
		catch := &catchPublished{Registerer: prometheus.NewRegistry()} // metrics counted, as in the server
		if opts.Metrics, err = relay.NewMetrics(catch, func(id string) string { return id }); err != nil {
			b.Fatal(err)
		}
		acked := catch.vec.WithLabelValues(acme.String())
		opts.Stream, opts.SubjectPrefix, opts.Rate = stream, prefix, -1 // the mechanism, not the per-tenant limit
		r, err := relay.New(opts)
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		t0, c0, a0 := time.Now(), cpuTime(), mallocs()
		go func() { done <- r.Run(rctx) }()
		var m dto.Metric
		for m.GetCounter().GetValue() < n { // acked by JetStream, as the baseline's end
			if err := acked.Write(&m); err != nil {
				b.Fatal(err)
			}
			if m.GetCounter().GetValue() < n {
				time.Sleep(time.Millisecond)
			}
		}
		relayTime += time.Since(t0)
		relayCPU += cpuTime() - c0
		relayAllocs += mallocs() - a0
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if got := streamMsgs(b, e, stream); got != n {
			b.Fatalf("the relay's stream holds %d messages", got)
		}
		b.StartTimer()
	}
	// The machine is shared: alternate which goes first.
	var pairs []float64 // relay/raw of each iteration's adjacent pair
	for i := 0; b.Loop(); i++ {
		r0, l0 := rawTime, relayTime
		if i%2 == 0 {
			raw()
			viaRelay()
		} else {
			viaRelay()
			raw()
		}
		pairs = append(pairs, (rawTime-r0).Seconds()/(relayTime-l0).Seconds())
	}
	k := float64(b.N)
	b.ReportMetric(k*n/rawTime.Seconds(), "raw-events/s")
	b.ReportMetric(k*n/relayTime.Seconds(), "relay-events/s")
	b.ReportMetric(rawTime.Seconds()/relayTime.Seconds(), "relay/raw")
	// The median of the pairs' ratios: a burst of load from elsewhere on
	// the shared machine spoils one pair, not the figure.
	slices.Sort(pairs)
	b.ReportMetric(pairs[len(pairs)/2], "relay/raw-median")
	// The client process's CPU per event (user + system) and heap
	// allocations per event: on a machine whose cores are saturated (the
	// NATS server takes about twice the client's CPU here), throughput
	// follows them.
	b.ReportMetric(float64(rawCPU.Microseconds())/(k*n), "raw-cpu-µs/event")
	b.ReportMetric(float64(relayCPU.Microseconds())/(k*n), "relay-cpu-µs/event")
	b.ReportMetric(float64(rawAllocs)/(k*n), "raw-allocs/event")
	b.ReportMetric(float64(relayAllocs)/(k*n), "relay-allocs/event")
}

// mallocs returns the heap objects the process allocated so far.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// cpuTime returns the process's CPU time so far (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// catchPublished registers on a registry and keeps the relay's
// bulkhead_relay_published_total: the benchmark reads the tenant's counter
// every millisecond to see the relay's end, which costs far less than
// gathering the registry would (that took 1.5 % of the process's CPU).
type catchPublished struct {
	prometheus.Registerer
	vec *prometheus.CounterVec
}

func (c *catchPublished) Register(col prometheus.Collector) error {
	if v, ok := col.(*prometheus.CounterVec); ok {
		ch := make(chan *prometheus.Desc, 1)
		v.Describe(ch)
		if d := <-ch; strings.Contains(d.String(), `"bulkhead_relay_published_total"`) {
			c.vec = v
		}
	}
	return c.Registerer.Register(col)
}

// streamMsgs returns how many messages the stream holds.
func streamMsgs(b *testing.B, e *env, stream string) uint64 {
	s, err := e.js.Stream(context.Background(), stream)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return info.State.Msgs
}

// BenchmarkRelayLatency: 1,000 tenants (pooled, one SQLite file) each
// commit one record at once; a JetStream consumer timestamps each
// message's arrival in the stream. Reported: p50 and p99 from the commit
// (the transaction returned) to the arrival, for the relay and for the
// baseline in the same run: each writer publishing its event itself with
// a synchronous JetStream publish right after its commit (no outbox: not
// crash-safe, the latency floor).
func BenchmarkRelayLatency(b *testing.B) {
	const tenants = 1000
	e := newEnv(b)
	ids := make([]tenant.ID, tenants)
	for i := range ids {
		ids[i] = e.create(b, fmt.Sprintf("t%04d", i), "pooled")
	}
	relayStream, relayPrefix := newStream(b, e)
	rawStream, rawPrefix := newStream(b, e)
	opts := e.options()
	opts.Stream, opts.SubjectPrefix = relayStream, relayPrefix
	e.run(b, opts)

	// Commit and arrival times by record id. The relay may publish before
	// its writer has noted the commit (the commit hook runs inside the
	// transaction's return): latencies are computed after each round.
	var committed, arrivals sync.Map
	var relayLat, rawLat []time.Duration
	consume := func(stream string) {
		c, err := e.js.OrderedConsumer(context.Background(), stream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			b.Fatal(err)
		}
		cc, err := c.Consume(func(m jetstream.Msg) {
			now := time.Now()
			var ev struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(m.Data(), &ev)
			arrivals.LoadOrStore(ev.ID, now) // the first arrival, should one come twice
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(cc.Stop)
	}
	consume(relayStream)
	consume(rawStream)

	round := 0
	writeAll := func(direct bool) {
		round++
		rids := make([]string, len(ids))
		var wg sync.WaitGroup
		for i, id := range ids {
			rids[i] = fmt.Sprintf("r%d-%d-%v", round, i, direct)
			wg.Go(func() {
				ctx := tenant.WithID(context.Background(), id)
				rid := rids[i]
				var rec store.Record
				err := e.fl.Router().Tx(ctx, func(tx *store.Tx) error {
					var err error
					rec, _, err = tx.Put(ctx, "orders", rid, []byte(`{"n":1}`), store.IfMatch{})
					return err
				})
				if err != nil {
					b.Error(err)
					return
				}
				committed.Store(rid, time.Now())
				if direct {
					body, _ := json.Marshal(store.Event{Tenant: id, Collection: "orders", ID: rid, Op: store.OpCreate, Version: rec.Version, At: rec.UpdatedAt})
					subj, _ := relay.Subject(rawPrefix, id, "orders")
					if _, err := e.js.Publish(ctx, subj, body, jetstream.WithMsgID(rid)); err != nil {
						b.Error(err)
					}
				}
			})
		}
		wg.Wait()
		for _, rid := range rids { // every message of the round is in
			for {
				if _, ok := arrivals.Load(rid); ok {
					break
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
		into := &relayLat
		if direct {
			into = &rawLat
		}
		for _, rid := range rids {
			c, ok1 := committed.Load(rid)
			a, ok2 := arrivals.Load(rid)
			if !ok1 || !ok2 {
				b.Fatalf("record %s: committed %v, arrived %v", rid, ok1, ok2)
			}
			*into = append(*into, max(a.(time.Time).Sub(c.(time.Time)), 0))
		}
	}
	// Warm up: every tenant's offset read and incarnation cached once.
	writeAll(false)
	writeAll(true)
	relayLat, rawLat = relayLat[:0], rawLat[:0]
	for b.Loop() {
		writeAll(false)
		writeAll(true)
	}
	p := func(lat []time.Duration, q float64) float64 {
		s := slices.Clone(lat)
		slices.Sort(s)
		return float64(s[int(q*float64(len(s)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(p(relayLat, 0.5), "relay-p50-ms")
	b.ReportMetric(p(relayLat, 0.99), "relay-p99-ms")
	b.ReportMetric(p(rawLat, 0.5), "direct-p50-ms")
	b.ReportMetric(p(rawLat, 0.99), "direct-p99-ms")
	b.ReportMetric(p(relayLat, 0.99)/p(rawLat, 0.99), "relay/direct-p99")
}
