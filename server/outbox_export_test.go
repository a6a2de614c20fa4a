package server

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/outbox"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TrimEvents runs one outbox trimming now, as the background run does.
func (s *Server) TrimEvents(ctx context.Context) ([]outbox.Trimmed, error) {
	return s.eventTrim.Trim(ctx)
}

// TenantEvents reads the tenant's events after position after through
// the router, in a context naming the tenant (data opened).
func (s *Server) TenantEvents(ctx context.Context, id tenant.ID, after int64) ([]store.Event, error) {
	ctx = tenant.WithID(ctx, id)
	var evs []store.Event
	err := s.router.ReadTx(ctx, func(tx *store.Tx) error {
		var err error
		evs, _, err = tx.Events(ctx, after, store.MaxEventPage, nil)
		return err
	})
	return evs, err
}
