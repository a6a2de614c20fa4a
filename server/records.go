package server

import (
	"context"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/recordapi"
)

// newRecordAPI builds the data plane's records (package recordapi) on the
// server's parts: writes that feed the usage gauges (writeTx), each
// tenant's max_body_bytes and max_page_size, and the server's error
// answers for what recordapi does not map.
func (s *Server) newRecordAPI() (*recordapi.API, error) {
	return recordapi.New(recordapi.Options{
		Router:     s.router,
		WriteTx:    s.writeTx,
		BodyLimit:  s.tenantBodyLimit,
		PageLimit:  s.pageLimit,
		WriteError: s.writeError,
	})
}

// tenantBodyLimit is the tenant's max_body_bytes where that is below the
// server's own cap (which limitBody applies to every request), else 0.
func (s *Server) tenantBodyLimit(ctx context.Context) (int64, error) {
	l, err := s.tenantLimits(ctx)
	if err != nil || l.MaxBodyBytes >= s.opts.MaxBodyBytes {
		return 0, err
	}
	return l.MaxBodyBytes, nil
}

// readBody reads the whole (size-limited) request body, as the record API
// reads a record's.
func readBody(r *http.Request) ([]byte, error) { return recordapi.ReadBody(r) }
