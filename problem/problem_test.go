package problem_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/bulkhead-dev/bulkhead/problem"
)

func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	w.Header().Set("ETag", `"3"`)
	w.Header().Set("Location", "/v1/x")
	problem.Write(w, problem.New(409, "conflict", "retry").WithHeader("Retry-After", "1"))
	if w.Code != 409 || w.Header().Get("Content-Type") != "application/problem+json" || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("status %d, headers %v", w.Code, w.Header())
	}
	if w.Header().Get("ETag") != "" || w.Header().Get("Location") != "" {
		t.Errorf("a problem kept the headers of a success: %v", w.Header())
	}
	var d problem.Document
	if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if d != (problem.Document{Type: problem.TypeBase + "conflict", Title: "Conflict", Status: 409, Detail: "retry", Code: "conflict"}) {
		t.Errorf("document %+v", d)
	}
}

func TestMatch(t *testing.T) {
	errGone := errors.New("gone")
	errBad := errors.New("bad name")
	errWho := errors.New("who")
	table := []problem.Sentinel{
		{Err: errGone, Status: 404, Code: "not_found", Detail: "no such thing"},
		{Err: errBad, Status: 400, Code: "invalid_name", Keep: true},
		{Err: errWho, Status: 401, Code: "unauthenticated", Detail: "send a credential"},
	}
	for _, tc := range []struct {
		err          error
		status       int
		code, detail string
	}{
		{fmt.Errorf("read: %w", errGone), 404, "not_found", "no such thing"}, // the wrapping text is not leaked
		{fmt.Errorf("name %q: %w", "x", errBad), 400, "invalid_name", `name "x": bad name`},
		{errWho, 401, "unauthenticated", "send a credential"},
	} {
		e, ok := problem.Match(tc.err, table)
		if !ok || e.Status != tc.status || e.Code != tc.code || e.Detail != tc.detail {
			t.Errorf("%v: %+v %v", tc.err, e, ok)
		}
		if (tc.status == 401) != (e.Header.Get("WWW-Authenticate") != "") {
			t.Errorf("%v: WWW-Authenticate %q", tc.err, e.Header.Get("WWW-Authenticate"))
		}
	}
	if _, ok := problem.Match(errors.New("disk full"), table); ok {
		t.Error("an unknown error matched")
	}
}
