package server_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// BenchmarkExport measures GET /v1/export over loopback HTTP for a tenant
// of BULKHEAD_BENCH_EXPORT_RECORDS records (default 200,000) of about
// 1 KiB on SQLite (pooled): MB/s of NDJSON received, and the growth of the
// process's resident memory (VmRSS, peak during the export minus before
// it). The baseline, in the same run, is a hand-written handler that
// streams the same records, stored in the clear as a team without
// Bulkhead would keep them (a second data directory written with
// encryption off), with one plain SELECT and json.Encoder; the server
// under test keeps them encrypted (the default) and decrypts each one.
//
//	go test ./server -run '^$' -bench BenchmarkExport -benchtime 1x
func BenchmarkExport(b *testing.B) {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("BULKHEAD_BENCH_EXPORT_RECORDS")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	e := newEnvIn(b, dir, server.Options{DisableRateLimit: true, Logger: slog.New(slog.DiscardHandler)})
	admin := e.tenantWithKey("acme", "pooled")
	seedBench(b, e.srv.RouterForBench(), "acme", n)
	plainDir := b.TempDir()
	pe := newEnvIn(b, plainDir, server.Options{DisableRateLimit: true, DisableEncryption: true, Logger: slog.New(slog.DiscardHandler)})
	pe.tenantWithKey("acme", "pooled")
	seedBench(b, pe.srv.RouterForBench(), "acme", n)
	base := httptest.NewServer(plainExport(b, filepath.Join(plainDir, "pooled.db"), "acme"))
	defer base.Close()

	var ours, plain exportRun
	for b.Loop() {
		ours.add(runExport(b, e.http.URL+"/v1/export", admin, n))
		plain.add(runExport(b, base.URL, "", n))
	}
	b.ReportMetric(ours.mbps(), "MB/s")
	b.ReportMetric(plain.mbps(), "baseline-MB/s")
	b.ReportMetric(ours.mbps()/plain.mbps(), "ratio")
	// MB per CPU-second of the whole process (server and client): what
	// one core would stream, whatever else runs on a shared machine.
	b.ReportMetric(ours.mbPerCPU(), "MB/cpu-s")
	b.ReportMetric(plain.mbPerCPU(), "baseline-MB/cpu-s")
	b.ReportMetric(ours.rssGrowthMiB(), "rss-growth-MiB")
	b.ReportMetric(plain.rssGrowthMiB(), "baseline-rss-growth-MiB")
	b.ReportMetric(float64(ours.bytes)/float64(ours.runs)/float64(n), "bytes/record")
}

// seedBench writes n records of about 1 KiB to tenant id, 2,000 per
// transaction, in 4 collections.
func seedBench(b *testing.B, r *store.Router, id string, n int) {
	ctx := tenant.WithID(context.Background(), tenant.MustParse(id))
	pad := strings.Repeat("x", 900)
	for i := 0; i < n; {
		err := r.Tx(ctx, func(tx *store.Tx) error {
			for j := 0; j < 2000 && i < n; j, i = j+1, i+1 {
				data := fmt.Sprintf(`{"n":%d,"title":"record %d","tags":["a","b"],"pad":%q}`, i, i, pad)
				if _, _, err := tx.Put(ctx, fmt.Sprintf("c%d", i%4), fmt.Sprintf("r%08d", i), []byte(data), store.IfMatch{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// exportRun sums up exports.
type exportRun struct {
	runs      int
	bytes     int64
	elapsed   time.Duration
	cpu       time.Duration
	rssGrowth int64 // the largest, bytes
}

func (r *exportRun) add(o exportRun) {
	r.runs++
	r.bytes += o.bytes
	r.elapsed += o.elapsed
	r.cpu += o.cpu
	r.rssGrowth = max(r.rssGrowth, o.rssGrowth)
}

func (r *exportRun) mbps() float64 { return float64(r.bytes) / 1e6 / r.elapsed.Seconds() }

func (r *exportRun) mbPerCPU() float64 { return float64(r.bytes) / 1e6 / r.cpu.Seconds() }

func (r *exportRun) rssGrowthMiB() float64 { return float64(r.rssGrowth) / (1 << 20) }

// runExport reads one export whole and checks it has n lines, sampling
// VmRSS every 5 ms while it runs.
func runExport(b *testing.B, target, token string, n int) exportRun {
	debug.FreeOSMemory()
	before := vmRSS(b)
	var peak atomic.Int64
	peak.Store(before)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if v := vmRSS(b); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	})
	req, _ := http.NewRequest("GET", target, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start, cpu := time.Now(), processCPU()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	lines := &lineCounter{}
	got, err := io.Copy(lines, res.Body)
	res.Body.Close()
	elapsed, cpu := time.Since(start), processCPU()-cpu
	close(stop)
	wg.Wait()
	if err != nil || res.StatusCode != 200 || lines.n != int64(n) {
		b.Fatalf("export of %s: %d, %d lines of %d, %v", target, res.StatusCode, lines.n, n, err)
	}
	return exportRun{bytes: got, elapsed: elapsed, cpu: cpu, rssGrowth: peak.Load() - before}
}

type lineCounter struct{ n int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += int64(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

// vmRSS is the process's resident set size in bytes.
func vmRSS(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status: resident memory is measured on Linux only")
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// plainExport is the baseline: one SELECT of the tenant's rows from the
// pooled SQLite file, each encoded as the record API does, flushed every
// 500 rows.
func plainExport(b *testing.B, path, id string) http.Handler {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}).String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rows, err := db.QueryContext(r.Context(), `SELECT collection, id, data, version, created_at, updated_at
			FROM records WHERE tenant_id = ?1 ORDER BY collection, id`, id)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer rows.Close()
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriterSize(w, 64<<10)
		enc := json.NewEncoder(bw)
		rc := http.NewResponseController(w)
		for i := 1; rows.Next(); i++ {
			var rec plainRecord
			var data string
			var created, updated int64
			if err := rows.Scan(&rec.Collection, &rec.ID, &data, &rec.Version, &created, &updated); err != nil {
				panic(http.ErrAbortHandler)
			}
			rec.Data = json.RawMessage(data)
			rec.CreatedAt, rec.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
			if err := enc.Encode(&rec); err != nil {
				panic(http.ErrAbortHandler)
			}
			if i%500 == 0 {
				_ = bw.Flush()
				_ = rc.Flush()
			}
		}
		_ = bw.Flush()
	})
}
