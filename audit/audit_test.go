package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
)

// backend is one database the log runs on, with a way in for an attacker.
type backend struct {
	log *Log
	// tamper runs stmts (written for SQLite, tables unqualified) with the
	// append-only triggers out of the way, as a privileged attacker would.
	tamper func(t *testing.T, stmts ...string)
}

// backends runs fn on SQLite and, when BULKHEAD_TEST_POSTGRES is set, on
// PostgreSQL.
func backends(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, openSQLiteBackend(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, openPostgresBackend(t)) })
}

func openSQLiteBackend(t *testing.T) backend {
	path := filepath.Join(t.TempDir(), FileName)
	l, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return backend{log: l, tamper: func(t *testing.T, stmts ...string) {
		t.Helper()
		// A raw connection to the file: drop the triggers, write.
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		all := append([]string{`DROP TRIGGER IF EXISTS entries_no_update`, `DROP TRIGGER IF EXISTS entries_no_delete`,
			`DROP TRIGGER IF EXISTS heads_forward_only`, `DROP TRIGGER IF EXISTS heads_no_delete`}, stmts...)
		for _, s := range all {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("tamper: %s: %v", s, err)
			}
		}
	}}
}

func openPostgresBackend(t *testing.T) backend {
	env := pgtest.New(t)
	ctx := context.Background()
	pool := func(url string) *pgxpool.Pool {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.MaxConns = 2
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	owner := pool(env.AdminURL)
	l, err := OpenPostgres(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return backend{log: l, tamper: func(t *testing.T, stmts ...string) {
		t.Helper()
		// The owner may switch its tables' triggers off.
		all := []string{`ALTER TABLE entries DISABLE TRIGGER USER`, `ALTER TABLE heads DISABLE TRIGGER USER`}
		all = append(all, stmts...)
		all = append(all, `ALTER TABLE entries ENABLE TRIGGER USER`, `ALTER TABLE heads ENABLE TRIGGER USER`)
		for _, s := range all {
			if _, err := owner.Exec(ctx, l.q(s)); err != nil {
				t.Fatalf("tamper: %s: %v", s, err)
			}
		}
	}}
}

func entry(chain string, i int) Entry {
	return Entry{Chain: chain, Principal: "operator:ops-1", Action: "tenant.update",
		Resource: "tenant/" + chain, Decision: "allow", RequestID: fmt.Sprintf("req-%d", i)}
}

func mustVerifyOK(t *testing.T, l *Log) Report {
	t.Helper()
	rep, err := l.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify found problems in an untouched log: %+v", rep.Problems)
	}
	return rep
}

func TestAppendChainsEntriesAndVerifies(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		chains := []string{ControlChain, "acme", "globex"}
		const n = 30
		var last = map[string]Entry{}
		for i := range n {
			for _, c := range chains {
				e, err := b.log.Append(ctx, entry(c, i))
				if err != nil {
					t.Fatal(err)
				}
				wantPrev := Genesis
				if p, ok := last[c]; ok {
					wantPrev = p.Hash
				}
				if e.Seq != int64(i+1) || e.Prev != wantPrev || e.Hash != ComputeHash(e) || e.Time.IsZero() {
					t.Fatalf("append %s #%d: got seq %d prev %s hash %s", c, i, e.Seq, e.Prev, e.Hash)
				}
				last[c] = e
			}
		}
		rep := mustVerifyOK(t, b.log)
		if len(rep.Chains) != 3 || rep.Chains[0].Chain != ControlChain {
			t.Fatalf("chains = %+v", rep.Chains)
		}
		for _, s := range rep.Chains {
			if s.Entries != n || s.LastSeq != n {
				t.Errorf("chain %s: %d entries, last seq %d; want %d", s.Chain, s.Entries, s.LastSeq, n)
			}
		}

		// List pages through one chain and returns exactly what was appended.
		var got []Entry
		for after := int64(0); ; {
			page, err := b.log.List(ctx, "acme", after, 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].Seq
		}
		if len(got) != n {
			t.Fatalf("listed %d entries, want %d", len(got), n)
		}
		for i, e := range got {
			if e.Seq != int64(i+1) || e.Chain != "acme" || e.RequestID != fmt.Sprintf("req-%d", i) || ComputeHash(e) != e.Hash {
				t.Fatalf("entry %d listed as %+v", i, e)
			}
		}
		if got[n-1] != last["acme"] {
			t.Errorf("listed %+v, appended %+v", got[n-1], last["acme"])
		}
		if page, err := b.log.List(ctx, "initech", 0, 0); err != nil || len(page) != 0 {
			t.Errorf("list of an empty chain: %v, %v", page, err)
		}
	})
}

func TestConcurrentAppendsKeepChainsConsistent(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		chains := []string{ControlChain, "acme", "globex"}
		const workers, each = 6, 15
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, err := b.log.Append(ctx, entry(chains[(w+i)%len(chains)], i)); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		rep := mustVerifyOK(t, b.log)
		var total int64
		for _, s := range rep.Chains {
			if s.Entries != s.LastSeq {
				t.Errorf("chain %s: %d entries but last seq %d", s.Chain, s.Entries, s.LastSeq)
			}
			total += s.Entries
		}
		if total != workers*each {
			t.Errorf("%d entries in all, want %d", total, workers*each)
		}
	})
}

func TestAppendRefusesInvalidEntries(t *testing.T) {
	l, err := OpenSQLite(filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ok := entry("acme", 1)
	for _, c := range []struct {
		name string
		mod  func(e *Entry)
	}{
		{"an empty chain", func(e *Entry) { e.Chain = "" }},
		{"a chain that is no tenant id", func(e *Entry) { e.Chain = "../etc" }},
		{"a missing action", func(e *Entry) { e.Action = "" }},
		{"a missing decision", func(e *Entry) { e.Decision = "" }},
		{"a newline in the resource", func(e *Entry) { e.Resource = "tenant/acme\nforged" }},
		{"an escape in the principal", func(e *Entry) { e.Principal = "op\x1b[31m" }},
		{"invalid UTF-8 in the request id", func(e *Entry) { e.RequestID = "\xff" }},
		{"an over-long resource", func(e *Entry) { e.Resource = strings.Repeat("r", maxResource+1) }},
		{"an over-long principal", func(e *Entry) { e.Principal = strings.Repeat("p", maxPrincipal+1) }},
	} {
		t.Run("refuses "+c.name, func(t *testing.T) {
			e := ok
			c.mod(&e)
			if _, err := l.Append(context.Background(), e); !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("err = %v, want ErrInvalidEntry", err)
			}
		})
	}
	if _, err := l.List(context.Background(), "NOT A TENANT", 0, 10); !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("list of a bad chain: err = %v", err)
	}
	rep := mustVerifyOK(t, l)
	if len(rep.Chains) != 0 {
		t.Errorf("refused entries were stored: %+v", rep.Chains)
	}
}

func TestHashEncodingIsUnambiguous(t *testing.T) {
	a := Entry{Chain: "acme", Seq: 1, Principal: "ab", Action: "c", Decision: "allow", Prev: Genesis}
	b := a
	b.Principal, b.Action = "a", "bc"
	if ComputeHash(a) == ComputeHash(b) {
		t.Fatal("moving a byte between fields keeps the hash")
	}
	for name, mod := range map[string]func(e *Entry){
		"chain": func(e *Entry) { e.Chain = "acme2" }, "seq": func(e *Entry) { e.Seq = 2 },
		"time": func(e *Entry) { e.Time = e.Time.Add(1) }, "resource": func(e *Entry) { e.Resource = "x" },
		"decision": func(e *Entry) { e.Decision = "deny" }, "request id": func(e *Entry) { e.RequestID = "x" },
		"prev": func(e *Entry) { e.Prev = strings.Repeat("0", 64) },
	} {
		c := a
		mod(&c)
		if ComputeHash(c) == ComputeHash(a) {
			t.Errorf("the hash does not cover %s", name)
		}
	}
}
