package server

import (
	"context"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// WriteRecordsNow writes n records of tenant id in one transaction (n
// events), faster than n requests, for tests that need many events.
func (s *Server) WriteRecordsNow(ctx context.Context, id tenant.ID, collection string, n int) error {
	return s.writeTx(tenant.WithID(ctx, id), func(tx *store.Tx) error {
		for i := range n {
			if _, _, err := tx.Put(ctx, collection, fmt.Sprintf("bulk-%d", i), []byte(`{"i":1}`), store.IfMatch{}); err != nil {
				return err
			}
		}
		return nil
	})
}

// TrimEventsNow trims tenant id's outbox to its newest keep events.
func (s *Server) TrimEventsNow(ctx context.Context, id tenant.ID, keep int) error {
	return s.router.Tx(tenant.WithID(ctx, id), func(tx *store.Tx) error {
		_, err := tx.TrimEvents(ctx, time.Time{}, keep, store.MaxEventPage)
		return err
	})
}

// EventPosition returns the position the server gives event seq of
// tenant id's current incarnation, as a stream would send it.
func (s *Server) EventPosition(ctx context.Context, id tenant.ID, seq int64) (string, error) {
	born, err := s.feed.handler.Incarnation(ctx, id)
	if err != nil {
		return "", err
	}
	return s.feed.handler.Positions.Encode(id, born, seq), nil
}
