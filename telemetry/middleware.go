package telemetry

import (
	"log/slog"
	"net/http"
	"time"
)

// Middleware returns HTTP middleware that logs one line per request to
// logger and counts it in metrics (either may be nil). It puts a
// RequestInfo in the request context unless an outer layer already did;
// inner layers fill it in.
//
// The log line holds request_id, tenant, route, method, status, duration
// and the response size — nothing from the request's path, query, headers
// or body, so tokens and record data cannot reach the log through it.
// Responses with status 500 and above are logged at level Error.
//
// Each of done, if any, is called after the request is logged and counted,
// with its status and duration, so that other per-request accounting (a
// health monitor) needs no second recorder or clock around the handler.
func Middleware(logger *slog.Logger, metrics *Metrics, done ...func(info *RequestInfo, status int, d time.Duration)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			info, ok := r.Context().Value(infoKey{}).(*RequestInfo)
			if !ok {
				info = &RequestInfo{}
				r = r.WithContext(WithInfo(r.Context(), info))
			}
			rec := &StatusRecorder{ResponseWriter: w}
			defer func() {
				// Runs during a panic too, so an aborted request is still
				// counted (as whatever status reached the client, or 500).
				d := time.Since(start)
				status := rec.Status()
				if p := recover(); p != nil {
					if !rec.Written() {
						status = http.StatusInternalServerError
					}
					observe(logger, metrics, r, info, status, rec.Bytes(), d)
					for _, f := range done {
						f(info, status, d)
					}
					panic(p)
				}
				observe(logger, metrics, r, info, status, rec.Bytes(), d)
				for _, f := range done {
					f(info, status, d)
				}
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

func observe(logger *slog.Logger, metrics *Metrics, r *http.Request, info *RequestInfo, status int, size int64, d time.Duration) {
	route := info.Route()
	tenantID := info.Tenant()
	if metrics != nil {
		metrics.ObserveRequest(tenantID, route, status, d)
	}
	if logger == nil {
		return
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	if route == "" {
		route = NoRoute
	}
	attrs := []slog.Attr{
		slog.String("request_id", info.ID()),
		slog.String("tenant", tenantID),
		slog.String("route", route),
		slog.String("method", safeMethod(r.Method)),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.Int64("bytes", size),
	}
	if c := info.ClientID(); c != "" {
		attrs = append(attrs, slog.String("client_request_id", c))
	}
	logger.LogAttrs(r.Context(), level, "http request", attrs...)
}

// safeMethod keeps arbitrary client-chosen method strings out of the log.
func safeMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// StatusRecorder is an http.ResponseWriter that remembers the status code
// and counts the bytes written. It supports http.ResponseController through
// Unwrap.
type StatusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

// WriteHeader records the status and passes it on.
func (s *StatusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Write counts the bytes and passes them on (an implicit 200 if no status
// was written).
func (s *StatusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Flush flushes the underlying writer if it can.
func (s *StatusRecorder) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (s *StatusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Written reports whether a final status has been sent.
func (s *StatusRecorder) Written() bool { return s.status != 0 }

// Status returns the status sent, or 200 if the handler sent nothing
// (which net/http then sends).
func (s *StatusRecorder) Status() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// Bytes returns how many body bytes were written.
func (s *StatusRecorder) Bytes() int64 { return s.bytes }
