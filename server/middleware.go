package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/telemetry"
	"github.com/bulkhead-dev/bulkhead/tracing"
)

// maxRequestIDLen bounds an inbound X-Request-ID the server will log.
const maxRequestIDLen = 64

// requestID gives every request an id of the server's own (random), sent
// in the X-Request-ID response header and carried in the request's
// telemetry.RequestInfo: the audit log and the request log name requests
// by it, and no client can choose it. An inbound X-Request-ID that is
// short and made of safe characters is kept apart, as the request log's
// client_request_id.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		info := &telemetry.RequestInfo{}
		info.SetID(id)
		if c := r.Header.Get("X-Request-ID"); safeRequestID(c) {
			info.SetClientID(c)
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(telemetry.WithInfo(r.Context(), info)))
	})
}

func safeRequestID(id string) bool {
	if len(id) < 1 || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// recoverPanics turns a panicking handler into a 500 internal problem
// (if nothing was sent yet) and logs the panic with its stack. The client
// learns nothing about the cause.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &telemetry.StatusRecorder{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
				slog.String("request_id", telemetry.InfoFrom(r.Context()).ID()),
				slog.String("panic", fmt.Sprint(p)),
				slog.String("stack", string(debug.Stack())))
			if rec.Written() {
				// Too late for a problem document: cut the response short.
				panic(http.ErrAbortHandler)
			}
			tracing.RecordProblem(r.Context(), "internal")
			writeProblem(w, newError(http.StatusInternalServerError, "internal", detailInternal))
		}()
		next.ServeHTTP(rec, r)
	})
}

// limitBody refuses bodies over the limit: at once when Content-Length
// says so, and while reading otherwise (handlers see *http.MaxBytesError,
// which maps to 413 body_too_large).
func (s *Server) limitBody(next http.Handler) http.Handler {
	max := s.opts.MaxBodyBytes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			w.Header().Set("Connection", "close")
			tracing.RecordProblem(r.Context(), "body_too_large")
			writeProblem(w, newError(http.StatusRequestEntityTooLarge, "body_too_large",
				"the request body is larger than "+strconv.FormatInt(max, 10)+" bytes"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
}
