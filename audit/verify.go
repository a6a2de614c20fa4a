package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
)

// Kinds of Problem.
const (
	// Changed: an entry's contents no longer match its hash.
	Changed = "changed"
	// Removed: seqs are missing between two entries of a chain.
	Removed = "removed"
	// Reordered: an entry's hash matches its contents only under another
	// seq — it was moved.
	Reordered = "reordered"
	// BrokenLink: an entry's prev is not the hash of the entry before it —
	// the earlier entry (or this one) was rewritten with a fresh hash.
	BrokenLink = "broken_link"
	// Truncated: the chain ends before the seq its head records.
	Truncated = "truncated"
	// HeadMismatch: the chain's head does not match its last entry.
	HeadMismatch = "head_mismatch"
)

// Problem is one thing Verify found wrong: where (Chain and Seq) and what.
type Problem struct {
	Chain  string `json:"chain"`
	Seq    int64  `json:"seq"`
	Kind   string `json:"problem"`
	Detail string `json:"detail"`
}

// ChainSummary counts one chain's entries.
type ChainSummary struct {
	Chain   string `json:"chain"`
	Entries int64  `json:"entries"`
	LastSeq int64  `json:"last_seq"`
	// LastHash is the hash of the chain's last entry: with LastSeq, the
	// anchor to export and compare later.
	LastHash string `json:"last_hash"`
}

// Report is the result of Verify: every chain, and every problem found,
// by chain and then seq.
type Report struct {
	Chains   []ChainSummary `json:"chains"`
	Problems []Problem      `json:"problems"`
}

// OK reports whether Verify found no problem.
func (r Report) OK() bool { return len(r.Problems) == 0 }

type head struct {
	seq  int64
	hash string
}

// Verify walks every chain from its first entry and reports each entry
// that was changed, removed or reordered, each broken link, and each chain
// whose end does not match its recorded head (a truncated tail). Entries
// appended while it runs are taken into account, not reported.
//
// What it cannot detect: someone with write access to the database who
// rewrites a chain's entries from some point on with fresh hashes AND
// moves the head to match. Export the heads (chain, last seq, hash)
// elsewhere from time to time to anchor the chains against that.
func (l *Log) Verify(ctx context.Context) (Report, error) {
	heads, err := l.heads(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("verify audit log: %w", err)
	}
	chains := map[string]bool{}
	for c := range heads {
		chains[c] = true
	}
	rows, err := l.db.QueryContext(ctx, l.q(`SELECT DISTINCT chain FROM entries`))
	if err != nil {
		return Report{}, fmt.Errorf("verify audit log: list chains: %w", err)
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return Report{}, fmt.Errorf("verify audit log: list chains: %w", err)
		}
		chains[c] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Report{}, fmt.Errorf("verify audit log: list chains: %w", err)
	}
	names := make([]string, 0, len(chains))
	for c := range chains {
		names = append(names, c)
	}
	sort.Strings(names)
	rep := Report{Chains: []ChainSummary{}, Problems: []Problem{}}
	for _, c := range names {
		sum, probs, err := l.verifyChain(ctx, c, heads[c])
		if err != nil {
			return Report{}, fmt.Errorf("verify audit chain %s: %w", c, err)
		}
		rep.Chains = append(rep.Chains, sum)
		rep.Problems = append(rep.Problems, probs...)
	}
	return rep, nil
}

// heads reads the head table.
func (l *Log) heads(ctx context.Context) (map[string]*head, error) {
	rows, err := l.db.QueryContext(ctx, l.q(`SELECT chain, seq, hash FROM heads`))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*head{}
	for rows.Next() {
		var c string
		h := &head{}
		if err := rows.Scan(&c, &h.seq, &h.hash); err != nil {
			return nil, err
		}
		out[c] = h
	}
	return out, rows.Err()
}

// verifyChain walks one chain in seq order.
func (l *Log) verifyChain(ctx context.Context, chain string, h *head) (ChainSummary, []Problem, error) {
	sum := ChainSummary{Chain: chain}
	var probs []Problem
	report := func(seq int64, kind, format string, args ...any) {
		probs = append(probs, Problem{Chain: chain, Seq: seq, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	var (
		mismatched []Entry            // hash does not match contents
		flagged    = map[int64]bool{} // seqs explained by a changed, reordered or removed entry
		links      []int64            // seqs whose prev does not link
		missing    []int64            // some of the missing seqs, as reorder candidates
	)
	rows, err := l.db.QueryContext(ctx, l.q(`SELECT `+entryColumns+` FROM entries WHERE chain = ? ORDER BY seq`), chain)
	if err != nil {
		return sum, nil, err
	}
	prevHash, expected := Genesis, int64(1)
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			rows.Close()
			return sum, nil, err
		}
		sum.Entries++
		gap := false
		switch {
		case e.Seq > expected:
			gap = true
			if e.Seq-1 == expected {
				report(expected, Removed, "entry %d is missing (entry %d follows entry %d)", expected, e.Seq, expected-1)
			} else {
				report(expected, Removed, "entries %d to %d are missing (entry %d follows entry %d)", expected, e.Seq-1, e.Seq, expected-1)
			}
			for s := expected; s < e.Seq && len(missing) < 64; s++ {
				missing = append(missing, s)
			}
			flagged[e.Seq-1] = true
		case e.Seq < expected: // only seq < 1 can get here
			report(e.Seq, Changed, "seq %d is out of range (seqs start at 1)", e.Seq)
			flagged[e.Seq] = true
		}
		if ComputeHash(e) != e.Hash {
			mismatched = append(mismatched, e)
			flagged[e.Seq] = true
		}
		if e.Prev != prevHash && !gap {
			links = append(links, e.Seq)
		}
		prevHash, expected = e.Hash, max(expected, e.Seq+1)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return sum, nil, err
	}
	sum.LastSeq, sum.LastHash = expected-1, prevHash

	// A mismatched entry whose hash fits its contents under another seq was
	// moved there; otherwise its contents were changed.
	candidates := append([]int64(nil), missing...)
	for _, m := range mismatched {
		candidates = append(candidates, m.Seq, m.Seq-2, m.Seq-1, m.Seq+1, m.Seq+2)
	}
	for _, m := range mismatched {
		moved := int64(0)
		for _, s := range candidates {
			if s == m.Seq || s < 1 {
				continue
			}
			e := m
			e.Seq = s
			if ComputeHash(e) == m.Hash {
				moved = s
				break
			}
		}
		if moved != 0 {
			report(m.Seq, Reordered, "entry %d holds the entry written as seq %d (its hash matches there)", m.Seq, moved)
		} else {
			report(m.Seq, Changed, "entry %d does not match its hash (a field was changed)", m.Seq)
		}
	}
	for _, s := range links {
		if flagged[s] || flagged[s-1] {
			continue // explained by the problem already reported
		}
		if s == 1 {
			report(s, BrokenLink, "entry 1's prev is not the genesis value (the chain's start was rewritten)")
			continue
		}
		report(s, BrokenLink, "entry %d's prev is not the hash of entry %d (entry %d was rewritten with a new hash, or entry %d was)", s, s-1, s-1, s)
	}

	// The head anchors the tail: without it, dropping the last entries
	// would leave a valid chain.
	if h != nil && h.seq < sum.LastSeq {
		// An append may have committed after the heads were read.
		var again head
		err := l.db.QueryRowContext(ctx, l.q(`SELECT seq, hash FROM heads WHERE chain = ?`), chain).Scan(&again.seq, &again.hash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return sum, nil, err
		}
		if err == nil {
			h = &again
		}
	}
	switch {
	case h == nil:
		report(sum.LastSeq, HeadMismatch, "chain has no head record, its last entry is %d (the head table was altered)", sum.LastSeq)
	case h.seq > sum.LastSeq:
		if h.seq == sum.LastSeq+1 {
			report(sum.LastSeq+1, Truncated, "entry %d is missing at the end (the head records seq %d)", h.seq, h.seq)
		} else {
			report(sum.LastSeq+1, Truncated, "entries %d to %d are missing at the end (the head records seq %d)", sum.LastSeq+1, h.seq, h.seq)
		}
	case h.seq < sum.LastSeq:
		report(h.seq+1, HeadMismatch, "entries %d to %d lie beyond the head (seq %d): written around the log, or the head was rolled back", h.seq+1, sum.LastSeq, h.seq)
	case h.hash != prevHash:
		report(sum.LastSeq, HeadMismatch, "entry %d's hash differs from the head's (the tail was rewritten)", sum.LastSeq)
	}
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Seq < probs[j].Seq })
	return sum, probs, nil
}
