package store

import (
	"context"
	"fmt"
	"math"
)

// EventBounds returns the bounds of the tenant's outbox as of this
// transaction: oldest, the lowest Seq it still holds (head+1 when it holds
// none), and head, the last Seq ever given (0 if none). A consumer whose
// position fell behind a trim (ErrEventsExpired) resumes from oldest-1
// after it has caught up by other means.
func (tx *Tx) EventBounds(ctx context.Context) (oldest, head int64, err error) {
	if err := tx.check(ctx); err != nil {
		return 0, 0, err
	}
	et := tx.events()
	if et == nil {
		return 0, 0, fmt.Errorf("%w (%T)", ErrEventsUnsupported, tx.btx)
	}
	// No event lies after the largest position: the page is empty, the
	// bounds are the snapshot's.
	_, oldest, head, err = et.Events(ctx, math.MaxInt64, 1, nil)
	return oldest, head, err
}
