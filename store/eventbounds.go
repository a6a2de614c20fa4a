package store

import (
	"context"
	"fmt"
)

// EventBounds returns the tenant's oldest Seq the outbox still holds
// (head+1 when it holds none) and head, the last Seq ever given (0 if
// none), as of this transaction: a reader that starts after head sees
// every later event, one that starts after oldest-1 every event still
// kept. It fails with ErrEventsUnsupported on a backend without an outbox.
func (tx *Tx) EventBounds(ctx context.Context) (oldest, head int64, err error) {
	if err := tx.check(ctx); err != nil {
		return 0, 0, err
	}
	et := tx.events()
	if et == nil {
		return 0, 0, fmt.Errorf("%w (%T)", ErrEventsUnsupported, tx.btx)
	}
	_, oldest, head, err = et.Events(ctx, 0, 1, nil)
	return oldest, head, err
}
