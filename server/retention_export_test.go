package server

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/retention"
)

// SweepRetention runs one retention sweep now, as the background sweep does.
func (s *Server) SweepRetention(ctx context.Context) ([]retention.Purged, error) {
	return s.retention.Sweep(ctx)
}
