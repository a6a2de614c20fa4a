package store

import "fmt"

// CursorAfter returns a list cursor of collection, for the transaction's
// tenant and no filters, that starts the next page of Tx.List at the first
// record whose id sorts after id. It lets a reader that walks a collection
// in id order (an export, say) resume after the last record it handled,
// whether or not that record still exists. Like any cursor it is bound to
// the tenant and the collection: it lists nothing of another tenant's.
func (tx *Tx) CursorAfter(collection, id string) (string, error) {
	if tx.done {
		return "", ErrTxDone
	}
	if err := ValidCollection(collection); err != nil {
		return "", err
	}
	if err := ValidRecordID(id); err != nil {
		return "", err
	}
	if tx.r.cursors == nil {
		return "", fmt.Errorf("cursor of %s: %w", collection, ErrNoCursorKey)
	}
	return tx.r.cursors.Encode(tx.tenant, collection, nil, id), nil
}
