package export

import (
	"context"
	"io"
	"runtime"
	"slices"

	"github.com/bulkhead-dev/bulkhead/store"
)

// DefaultPageSize is how many records Write reads per transaction when
// Options.PageSize is 0: about 0.5 MiB of records of 1 KiB.
const DefaultPageSize = 500

// Options configures Write.
type Options struct {
	// After is the position to resume after; the zero Position starts at
	// the first record.
	After Position
	// PageSize is the number of records read per transaction (1 to
	// store.MaxLimit; 0 means DefaultPageSize). It bounds the memory an
	// export holds.
	PageSize int
	// Page, if set, is called after each page has been written to the
	// writer, with the totals so far: a server flushes its response there.
	// An error it returns ends the export with that error.
	Page func(Stats) error
}

// Stats are the totals of an export so far.
type Stats struct {
	Records int64 // lines written
	Bytes   int64 // bytes written, newlines included
	// Last is the position of the last record written (the zero Position
	// if none): resume after it.
	Last Position
}

// Write streams every record of the tenant in ctx that sorts after
// opts.After to w, one line each (see the package documentation for the
// order, the form and the consistency). It reads through router alone. On
// an error the records before Stats.Last are complete lines in w.
func Write(ctx context.Context, router *store.Router, w io.Writer, opts Options) (Stats, error) {
	size := opts.PageSize
	if size == 0 {
		size = DefaultPageSize
	}
	if size < 1 || size > store.MaxLimit {
		return Stats{}, store.ErrInvalidLimit
	}
	names, err := collections(ctx, router, opts.After.Collection)
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	var buf []byte
	for _, c := range names {
		cursor := ""
		for first := true; first || cursor != ""; first = false {
			var page store.Page
			err := router.ReadTx(ctx, func(tx *store.Tx) error {
				var err error
				if first && c == opts.After.Collection && opts.After.ID != "" {
					if cursor, err = tx.CursorAfter(c, opts.After.ID); err != nil {
						return err
					}
				}
				page, err = tx.List(ctx, c, store.ListOptions{Limit: size, Cursor: cursor})
				return err
			})
			if err != nil {
				return st, err
			}
			buf = buf[:0]
			for i := range page.Items {
				if buf, err = appendRecord(buf, &page.Items[i]); err != nil {
					return st, err
				}
				if i%store.YieldEvery == store.YieldEvery-1 {
					runtime.Gosched()
				}
			}
			n, err := w.Write(buf)
			st.Bytes += int64(n)
			if err != nil {
				return st, err // the last line may be cut: Last is the one before
			}
			if k := len(page.Items); k > 0 {
				st.Records += int64(k)
				st.Last = Of(page.Items[k-1])
			}
			if opts.Page != nil {
				if err := opts.Page(st); err != nil {
					return st, err
				}
			}
			cursor = page.NextCursor
		}
	}
	return st, nil
}

// collections returns the names of the tenant's collections from from on,
// in name order.
func collections(ctx context.Context, router *store.Router, from string) ([]string, error) {
	var cs []store.Collection
	err := router.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		cs, err = tx.Collections(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(cs))
	for _, c := range cs {
		if c.Name >= from {
			names = append(names, c.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Counts are a tenant's records per collection and in all, as the store
// counts them.
type Counts struct {
	Collections map[string]int64 `json:"collections"`
	Total       int64            `json:"total"`
}

// Count returns the record counts of the tenant in ctx, read in one
// transaction.
func Count(ctx context.Context, router *store.Router) (Counts, error) {
	n := Counts{Collections: map[string]int64{}}
	err := router.ReadTx(ctx, func(tx *store.Tx) error {
		cs, err := tx.Collections(ctx)
		for _, c := range cs {
			n.Collections[c.Name] = c.Records
			n.Total += c.Records
		}
		return err
	})
	return n, err
}
