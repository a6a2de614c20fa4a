package audit

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// fill appends n entries to each chain.
func fill(t *testing.T, l *Log, n int, chains ...string) {
	t.Helper()
	for i := range n {
		for _, c := range chains {
			if _, err := l.Append(context.Background(), entry(c, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type found struct {
	chain string
	seq   int64
	kind  string
}

func problems(t *testing.T, l *Log) []found {
	t.Helper()
	rep, err := l.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []found
	for _, p := range rep.Problems {
		if p.Detail == "" || !strings.Contains(p.Detail, fmt.Sprint(p.Seq)) {
			t.Errorf("problem %+v does not say which entry", p)
		}
		out = append(out, found{p.Chain, p.Seq, p.Kind})
	}
	if rep.OK() != (len(out) == 0) {
		t.Errorf("OK() = %v with %d problems", rep.OK(), len(out))
	}
	return out
}

func TestVerifyFindsEachKindOfTampering(t *testing.T) {
	cases := []struct {
		name   string
		stmts  []string
		expect []found
	}{
		{"a changed field", []string{
			`UPDATE entries SET decision = 'allow', principal = 'operator:someone-else' WHERE chain = 'acme' AND seq = 7`,
		}, []found{{"acme", 7, Changed}}},
		{"a removed entry", []string{
			`DELETE FROM entries WHERE chain = 'acme' AND seq = 5`,
		}, []found{{"acme", 5, Removed}}},
		{"two entries with swapped seqs", []string{
			`UPDATE entries SET seq = -1 WHERE chain = 'acme' AND seq = 3`,
			`UPDATE entries SET seq = 3 WHERE chain = 'acme' AND seq = 4`,
			`UPDATE entries SET seq = 4 WHERE chain = 'acme' AND seq = -1`,
		}, []found{{"acme", 3, Reordered}, {"acme", 4, Reordered}}},
		{"a truncated tail", []string{
			`DELETE FROM entries WHERE chain = 'acme' AND seq > 8`,
		}, []found{{"acme", 9, Truncated}}},
		{"a truncated tail with the head rolled back", []string{
			`DELETE FROM entries WHERE chain = 'acme' AND seq > 8`,
			`UPDATE heads SET seq = 8 WHERE chain = 'acme'`,
		}, []found{{"acme", 8, HeadMismatch}}},
		{"an entry rewritten with a fresh hash", []string{
			// Any 64 hex digits: the next entry's prev no longer matches.
			`UPDATE entries SET hash = '` + strings.Repeat("ab", 32) + `' WHERE chain = 'acme' AND seq = 6`,
		}, []found{{"acme", 6, Changed}}},
		{"an entry removed from the control chain", []string{
			`DELETE FROM entries WHERE chain = '_control' AND seq = 1`,
		}, []found{{ControlChain, 1, Removed}}},
		{"a removed head", []string{
			`DELETE FROM heads WHERE chain = 'acme'`,
		}, []found{{"acme", 10, HeadMismatch}}},
	}
	backends(t, func(t *testing.T, b backend) {
		// One log, chains named per case, so PostgreSQL needs one database.
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				chain := fmt.Sprintf("acme%d", i)
				ctrl := fmt.Sprintf("ctrl%d", i) // stands in for _control
				fill(t, b.log, 10, chain, ctrl)
				var stmts []string
				for _, s := range c.stmts {
					s = strings.ReplaceAll(s, "'acme'", "'"+chain+"'")
					stmts = append(stmts, strings.ReplaceAll(s, "'_control'", "'"+ctrl+"'"))
				}
				b.tamper(t, stmts...)
				var want []found
				for _, f := range c.expect {
					f.chain = map[string]string{"acme": chain, ControlChain: ctrl}[f.chain]
					want = append(want, f)
				}
				// Earlier cases' chains keep their problems; the untouched
				// chain of this case must not be blamed.
				var got []found
				for _, f := range problems(t, b.log) {
					if f.chain == chain || f.chain == ctrl {
						got = append(got, f)
					}
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("verify found %v, want %v", got, want)
				}
			})
		}
	})
}

func TestVerifyNamesTheLinkAfterARewrittenEntry(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		fill(t, b.log, 10, ControlChain)
		// Rewrite entry 6 and give it a correct hash for its new contents:
		// only the link from entry 7 betrays it.
		es, err := b.log.List(context.Background(), ControlChain, 5, 1)
		if err != nil {
			t.Fatal(err)
		}
		e := es[0]
		e.Decision = "deny"
		e.Hash = ComputeHash(e)
		b.tamper(t, fmt.Sprintf(`UPDATE entries SET decision = 'deny', hash = '%s' WHERE chain = '%s' AND seq = 6`, e.Hash, ControlChain))
		want := []found{{ControlChain, 7, BrokenLink}}
		if got := problems(t, b.log); !reflect.DeepEqual(got, want) {
			t.Fatalf("verify found %v, want %v", got, want)
		}
	})
}

func TestTheDatabaseRefusesChangesToEntries(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		fill(t, b.log, 3, "acme")
		ctx := context.Background()
		stmts := []string{
			`UPDATE entries SET decision = 'deny' WHERE chain = 'acme' AND seq = 2`,
			`DELETE FROM entries WHERE chain = 'acme' AND seq = 3`,
			`DELETE FROM entries`,
			`DELETE FROM heads WHERE chain = 'acme'`,
			`UPDATE heads SET seq = 2 WHERE chain = 'acme'`,
			`UPDATE heads SET seq = 9 WHERE chain = 'acme'`,
		}
		if b.log.postgres {
			stmts = append(stmts, `TRUNCATE entries`, `TRUNCATE heads`)
		}
		for _, s := range stmts {
			_, err := b.log.db.ExecContext(ctx, b.log.q(s))
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: err = %v, want the append-only refusal", s, err)
			}
		}
		rep := mustVerifyOK(t, b.log)
		if rep.Chains[0].Entries != 3 {
			t.Errorf("chain holds %d entries after refused changes, want 3", rep.Chains[0].Entries)
		}
	})
}
