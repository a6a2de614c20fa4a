package server_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store"
)

// The change feed's load: feedTenants tenants with feedStreams open
// streams each, feedWriters concurrent writers spreading their writes
// over the tenants round-robin.
const (
	feedTenants = 100
	feedStreams = 10
	feedWriters = 4
)

// feedTarget is a server under the change feed's load.
type feedTarget struct {
	client *http.Client
	// stream returns the request that opens a stream of tenant i.
	stream func(ctx context.Context, i int) *http.Request
	// write writes record id of tenant i and returns once it is answered.
	write func(i int, id string) error
	// tenant is the tenant name events of tenant i carry.
	tenant func(i int) string
}

// feedResult is what runFeedLoad measured.
type feedResult struct {
	p50, p99 time.Duration
	cross    int64 // events delivered to another tenant's stream
	missing  int   // deliveries that never came
}

// runFeedLoad opens the streams, runs the writes of b.Loop and measures,
// for every delivery of every write's event on each of its tenant's
// streams, the time from the write's answer to the delivery (0 for a
// delivery that came first).
func runFeedLoad(b *testing.B, t feedTarget) feedResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type delivery struct {
		key string // tenant/id
		at  time.Time
	}
	var cross atomic.Int64
	deliveries := make([][]delivery, feedTenants*feedStreams)
	var total atomic.Int64
	var ready, done sync.WaitGroup
	for s := range feedTenants * feedStreams {
		i := s / feedStreams
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			res, err := t.client.Do(t.stream(ctx, i))
			if err != nil || res.StatusCode != http.StatusOK {
				b.Errorf("open stream of tenant %d: %v %v", i, err, res)
				ready.Done()
				return
			}
			defer res.Body.Close()
			ready.Done()
			br := bufio.NewReaderSize(res.Body, 64<<10)
			want := t.tenant(i)
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				data, ok := strings.CutPrefix(string(line), "data: ")
				if !ok {
					continue
				}
				at := time.Now()
				var ev struct{ Tenant, ID string }
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					b.Errorf("stream of tenant %d: %v", i, err)
					return
				}
				if ev.Tenant != want {
					cross.Add(1)
				}
				deliveries[s] = append(deliveries[s], delivery{ev.Tenant + "/" + ev.ID, at})
				total.Add(1)
			}
		}()
	}
	ready.Wait()
	time.Sleep(100 * time.Millisecond) // let every stream reach its wait: the first writes should not race the stream's start

	answered := make([]map[string]time.Time, feedWriters)
	work := make(chan int, feedWriters)
	var writers sync.WaitGroup
	for w := range feedWriters {
		answered[w] = map[string]time.Time{}
		writers.Add(1)
		go func() {
			defer writers.Done()
			for n := range work {
				i, id := n%feedTenants, fmt.Sprintf("w%d", n)
				if err := t.write(i, id); err != nil {
					b.Error(err)
					continue
				}
				answered[w][t.tenant(i)+"/"+id] = time.Now()
			}
		}()
	}
	n := 0
	for b.Loop() {
		work <- n
		n++
	}
	close(work)
	writers.Wait()
	want := int64(n * feedStreams)
	for deadline := time.Now().Add(time.Minute); total.Load() < want && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	done.Wait()

	commit := map[string]time.Time{}
	for _, m := range answered {
		for k, v := range m {
			commit[k] = v
		}
	}
	var lat []time.Duration
	for _, ds := range deliveries {
		for _, d := range ds {
			at, ok := commit[d.key]
			if !ok {
				continue
			}
			lat = append(lat, max(0, d.at.Sub(at)))
		}
	}
	slices.Sort(lat)
	r := feedResult{cross: cross.Load(), missing: int(want) - len(lat)}
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r
}

func raiseOpenFiles(b *testing.B) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func streamClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 2048, MaxIdleConnsPerHost: 2048, MaxConnsPerHost: 0,
		IdleConnTimeout: time.Minute}}
}

func report(b *testing.B, r feedResult) {
	b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(r.cross), "cross-tenant")
	if r.cross != 0 {
		b.Errorf("%d cross-tenant deliveries", r.cross)
	}
	if r.missing != 0 {
		b.Errorf("%d deliveries never came", r.missing)
	}
}

// BenchmarkChangeFeed: 1,000 open GET /v1/events streams across 100
// tenants (10 each) over loopback HTTP, writes spread across the tenants;
// p50 and p99 from each write's answer to its event's delivery on each of
// its tenant's streams, and the cross-tenant deliveries (must be 0).
// Baseline: a hand-written SSE broadcaster on a plain SQLite table (an
// INSERT per write, then the event handed in memory to the tenant's
// streams): the same transport and load with no outbox, no positions, no
// resume, no isolation checks.
func BenchmarkChangeFeed(b *testing.B) {
	raiseOpenFiles(b)
	b.Run("bulkhead", func(b *testing.B) {
		e := newEnvIn(b, b.TempDir(), server.Options{DisableRateLimit: true, EventsMaxStreamsTotal: 2 * feedTenants * feedStreams,
			AdmissionCapacity: 64, Logger: discardLogger()})
		var toks []string
		for i := range feedTenants {
			toks = append(toks, e.tenantWithKey(fmt.Sprintf("feed-%03d", i), "pooled"))
		}
		client := streamClient()
		report(b, runFeedLoad(b, feedTarget{client: client,
			stream: func(ctx context.Context, i int) *http.Request {
				r, _ := http.NewRequestWithContext(ctx, "GET", e.http.URL+"/v1/events", nil)
				r.Header.Set("Authorization", "Bearer "+toks[i])
				return r
			},
			write: func(i int, id string) error {
				r, _ := http.NewRequest("PUT", e.http.URL+"/v1/collections/notes/records/"+id, strings.NewReader(`{"n":1}`))
				r.Header.Set("Authorization", "Bearer "+toks[i])
				res, err := client.Do(r)
				if err != nil {
					return err
				}
				res.Body.Close()
				if res.StatusCode != 201 {
					return fmt.Errorf("write: %d", res.StatusCode)
				}
				return nil
			},
			tenant: func(i int) string { return fmt.Sprintf("feed-%03d", i) },
		}))
	})
	b.Run("baseline", func(b *testing.B) {
		url := servePlainFeed(b)
		client := streamClient()
		report(b, runFeedLoad(b, feedTarget{client: client,
			stream: func(ctx context.Context, i int) *http.Request {
				r, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/events/%d", url, i), nil)
				return r
			},
			write: func(i int, id string) error {
				res, err := client.Post(fmt.Sprintf("%s/write/%d/%s", url, i, id), "application/json", strings.NewReader(`{"n":1}`))
				if err != nil {
					return err
				}
				res.Body.Close()
				if res.StatusCode != 201 {
					return fmt.Errorf("write: %d", res.StatusCode)
				}
				return nil
			},
			tenant: func(i int) string { return fmt.Sprint(i) },
		}))
	})
}

// servePlainFeed is the hand-written broadcaster: POST /write/{t}/{id}
// inserts into a plain SQLite table, then hands the event to tenant t's
// streams (buffered channels); GET /events/{t} writes each event it gets
// and flushes.
func servePlainFeed(b *testing.B) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(b.TempDir(), "plain.db")), RawQuery: q.Encode()}).String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE plain (tenant TEXT, id TEXT, data TEXT, version INTEGER, PRIMARY KEY (tenant, id)) WITHOUT ROWID`); err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	subs := map[string]map[chan []byte]bool{}
	var seq atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /write/{t}/{id}", func(w http.ResponseWriter, r *http.Request) {
		t, id := r.PathValue("t"), r.PathValue("id")
		var body [64]byte
		n, _ := r.Body.Read(body[:])
		if _, err := db.ExecContext(r.Context(), `INSERT INTO plain VALUES (?, ?, ?, 1)`, t, id, string(body[:n])); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		ev, _ := json.Marshal(store.Event{Seq: seq.Add(1), Collection: "notes", ID: id, Op: store.OpCreate, Version: 1, At: time.Now().UTC()})
		ev = []byte(strings.Replace(string(ev), `"tenant":""`, `"tenant":"`+t+`"`, 1))
		mu.Lock()
		for c := range subs[t] {
			select {
			case c <- ev:
			default:
			}
		}
		mu.Unlock()
		w.WriteHeader(201)
	})
	mux.HandleFunc("GET /events/{t}", func(w http.ResponseWriter, r *http.Request) {
		t := r.PathValue("t")
		c := make(chan []byte, 1024)
		mu.Lock()
		if subs[t] == nil {
			subs[t] = map[chan []byte]bool{}
		}
		subs[t][c] = true
		mu.Unlock()
		defer func() { mu.Lock(); delete(subs[t], c); mu.Unlock() }()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case ev := <-c:
				fmt.Fprintf(w, "event: change\ndata: %s\n\n", ev)
				w.(http.Flusher).Flush()
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(ln) }()
	b.Cleanup(func() { _ = hs.Close() })
	return "http://" + ln.Addr().String()
}
