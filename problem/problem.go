// Package problem writes RFC 9457 problem documents
// (application/problem+json), the one error shape of Bulkhead's HTTP
// surfaces: the server's API and the ingress middleware a team puts in
// front of its own handlers.
//
// Every problem carries a stable machine-readable Code next to the HTTP
// status; Type is https://bulkhead.dev/problems/<code>. Clients branch on
// Code, people read Detail.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// TypeBase is the prefix of every problem type URI.
const TypeBase = "https://bulkhead.dev/problems/"

// Document is a problem document as it is sent.
type Document struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	// Quota problems (code quota_exceeded) also say which limit was hit.
	Resource  string `json:"resource,omitempty"`
	Limit     *int64 `json:"limit,omitempty"`
	Usage     *int64 `json:"usage,omitempty"`
	Requested *int64 `json:"requested,omitempty"`
}

// Error is an error that is answered with a problem document: its status,
// code and detail, and the response headers that go with it (Allow,
// WWW-Authenticate, Retry-After, …).
type Error struct {
	Status int
	Code   string
	Detail string
	Header http.Header
	// Extra fills the document's optional fields (quota problems).
	Extra func(*Document)
}

// New returns a problem error.
func New(status int, code, detail string) *Error {
	return &Error{Status: status, Code: code, Detail: detail}
}

func (e *Error) Error() string { return e.Code + ": " + e.Detail }

// WithHeader returns e with response header k set to v (e is changed).
func (e *Error) WithHeader(k, v string) *Error {
	if e.Header == nil {
		e.Header = http.Header{}
	}
	e.Header.Set(k, v)
	return e
}

// Document returns the document e is sent as.
func (e *Error) Document() Document {
	d := Document{
		Type:   TypeBase + e.Code,
		Title:  http.StatusText(e.Status),
		Status: e.Status,
		Detail: e.Detail,
		Code:   e.Code,
	}
	if e.Extra != nil {
		e.Extra(&d)
	}
	return d
}

// Write sends e as the response: its headers, the status and the document.
// Headers that describe a successful response (ETag, Location) are removed.
func Write(w http.ResponseWriter, e *Error) {
	h := w.Header()
	for k, v := range e.Header {
		h[k] = v
	}
	body, err := json.Marshal(e.Document())
	if err != nil { // not reached: the document is strings and numbers
		body = []byte(fmt.Sprintf(`{"status":%d,"code":"internal"}`, e.Status))
	}
	body = append(body, '\n')
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("ETag")
	h.Del("Location")
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

// Sentinel maps an error value (matched with errors.Is) to its answer.
// Keep says whether the error's own message is a safe and useful detail;
// otherwise Detail is used as is.
type Sentinel struct {
	Err    error
	Status int
	Code   string
	Keep   bool
	Detail string
}

// Match returns the answer of the first sentinel in table that err wraps
// (a 401 with its WWW-Authenticate challenge); ok is false if none does.
// Order matters only where an error could wrap two of them.
func Match(err error, table []Sentinel) (e *Error, ok bool) {
	for _, s := range table {
		if errors.Is(err, s.Err) {
			d := s.Detail
			if s.Keep {
				d = err.Error()
			}
			e = New(s.Status, s.Code, d)
			if s.Status == http.StatusUnauthorized {
				e.WithHeader("WWW-Authenticate", `Bearer realm="bulkhead", error="invalid_token"`)
			}
			return e, true
		}
	}
	return nil, false
}
