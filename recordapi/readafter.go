package recordapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/store"
)

// The headers of read-your-writes on a shard with a read replica.
const (
	// CommitTokenHeader carries the commit token of a write (PUT, POST,
	// DELETE), when the tenant's shard has a replica.
	CommitTokenHeader = "Bulkhead-Commit-Token"
	// ReadAfterHeader on a read (GET) carries a commit token: the read
	// then sees at least that write, served by a replica that has replayed
	// it or by the primary. A token that is not the tenant's own, as it was
	// returned, is 400 invalid_read_after.
	ReadAfterHeader = "Bulkhead-Read-After"
)

// read runs fn in a read-only transaction for the tenant in r's context:
// one that a read replica may serve (unless Options.PrimaryReads), and
// that sees at least the write whose token r carries in ReadAfterHeader.
func (a *API) read(r *http.Request, fn func(ctx context.Context, tx *store.Tx) error) error {
	ctx := r.Context()
	switch toks := r.Header.Values(ReadAfterHeader); len(toks) {
	case 0:
	case 1:
		ctx = store.WithReadAfter(ctx, toks[0])
		if toks[0] == "" {
			return fmt.Errorf("%w: the %s header is empty (send the %s of a write, or no header)", store.ErrInvalidReadAfter, ReadAfterHeader, CommitTokenHeader)
		}
	default:
		return fmt.Errorf("%w: give one %s header (the token of the latest write)", store.ErrInvalidReadAfter, ReadAfterHeader)
	}
	return a.o.Router.Run(ctx, store.TxOptions{ReadOnly: true, Replica: !a.o.PrimaryReads}, func(tx *store.Tx) error {
		return fn(ctx, tx)
	})
}

// write runs fn in Options.WriteTx and, once it committed, sets the commit
// token header on w (if the tenant's shard gives one).
func (a *API) write(w http.ResponseWriter, ctx context.Context, fn func(*store.Tx) error) error {
	var last *store.Tx
	err := a.o.WriteTx(ctx, func(tx *store.Tx) error {
		last = tx
		return fn(tx)
	})
	if err != nil {
		return err
	}
	if tok := last.CommitToken(); tok != "" {
		w.Header().Set(CommitTokenHeader, tok)
	}
	return nil
}
