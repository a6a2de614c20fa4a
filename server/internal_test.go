package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/telemetry"
)

func TestParseIfMatch(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want store.IfMatch
		ok   bool
	}{
		{nil, store.IfMatch{}, true},
		{[]string{`*`}, store.IfMatch{Any: true}, true},
		{[]string{` "7" `}, store.IfMatch{Version: 7}, true},
		{[]string{`"9223372036854775807"`}, store.IfMatch{Version: 9223372036854775807}, true},
		{[]string{`7`}, store.IfMatch{}, false},
		{[]string{`"0"`}, store.IfMatch{}, false},
		{[]string{`"-1"`}, store.IfMatch{}, false},
		{[]string{`"+1"`}, store.IfMatch{}, false},
		{[]string{`""`}, store.IfMatch{}, false},
		{[]string{`"x"`}, store.IfMatch{}, false},
		{[]string{`W/"1"`}, store.IfMatch{}, false},
		{[]string{`"1", "2"`}, store.IfMatch{}, false},
		{[]string{`"1"`, `"2"`}, store.IfMatch{}, false},
		{[]string{`"99999999999999999999"`}, store.IfMatch{}, false},
	} {
		h := http.Header{}
		for _, v := range tc.in {
			h.Add("If-Match", v)
		}
		got, err := parseIfMatch(h)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("If-Match %q: got %+v, %v", tc.in, got, err)
		}
		if err != nil {
			if e, ok := toAPIError(err); !ok || e.code != "invalid_if_match" || e.status != 400 {
				t.Errorf("If-Match %q: error %v", tc.in, err)
			}
		}
	}
}

func TestSafeRequestID(t *testing.T) {
	for id, ok := range map[string]bool{
		"":                        false,
		"a":                       true,
		"0f8fad5b-d9cb-469f-a165": true,
		"trace:1.2_3":             true,
		strings.Repeat("a", 64):   true,
		strings.Repeat("a", 65):   false,
		"a b":                     false,
		"a\"b":                    false,
		"a\nb":                    false,
		"ü":                       false,
		"<script>":                false,
	} {
		if got := safeRequestID(id); got != ok {
			t.Errorf("safeRequestID(%q) = %v", id, got)
		}
	}
}

func TestListOptions(t *testing.T) {
	for _, tc := range []struct {
		q, code string
		limit   int
		filters int
	}{
		{"", "", 0, 0},
		{"limit=10", "", 10, 0},
		{"limit=1000&a=eq.1&b=eq.x", "", 1000, 2},
		{"a=eq.1&a=eq.2", "", 0, 2},
		{"limit=1&limit=2", "invalid_limit", 0, 0},
		{"limit=-1", "invalid_limit", 0, 0},
		{"limit=", "invalid_limit", 0, 0},
		{"cursor=", "invalid_cursor", 0, 0},
		{"cursor=a&cursor=b", "invalid_cursor", 0, 0},
		{"a=1", "invalid_filter", 0, 0},
		{"9a=eq.1", "invalid_filter", 0, 0},
		{"a=eq.1;b=eq.2", "invalid_filter", 0, 0},
		{"a=%zz", "invalid_filter", 0, 0},
		{"a=eq.1&b=eq.1&c=eq.1&d=eq.1&e=eq.1&f=eq.1&g=eq.1&h=eq.1&i=eq.1", "invalid_filter", 0, 0},
	} {
		opts, err := listOptions(tc.q)
		if tc.code == "" {
			if err != nil || opts.Limit != tc.limit || len(opts.Filters) != tc.filters {
				t.Errorf("?%s: %+v, %v", tc.q, opts, err)
			}
			continue
		}
		e, ok := toAPIError(err)
		if !ok || e.code != tc.code || e.status != 400 {
			t.Errorf("?%s: error %v, want %s", tc.q, err, tc.code)
		}
	}
}

func TestUnknownErrorsAre500WithoutDetail(t *testing.T) {
	var logs bytes.Buffer
	s := &Server{log: telemetry.NewLogger(&logs, slog.LevelInfo)}
	rec := httptest.NewRecorder()
	s.writeError(rec, httptest.NewRequest("GET", "/", nil), errorString("open /secret/path/t_acme.db: disk on fire"))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "secret") || !strings.Contains(rec.Body.String(), `"code":"internal"`) {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "disk on fire") {
		t.Errorf("the cause was not logged: %s", logs.String())
	}
	rec = httptest.NewRecorder()
	s.writeError(rec, httptest.NewRequest("GET", "/", nil), context.Canceled)
	if rec.Code != 503 {
		t.Errorf("a cancelled request gave %d", rec.Code)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestPanicsBecome500AndAreLoggedWithStack(t *testing.T) {
	var logs bytes.Buffer
	s := &Server{
		log:     telemetry.NewLogger(&logs, slog.LevelInfo),
		metrics: telemetry.NewMetrics(telemetry.MetricsOptions{}),
		opts:    Options{MaxBodyBytes: DefaultMaxBodyBytes},
	}
	h := requestID(telemetry.Middleware(s.log, s.metrics)(s.recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		telemetry.InfoFrom(r.Context()).SetRoute("GET /boom")
		panic("internal secret 0xdeadbeef")
	}))))
	ts := httptest.NewServer(h)
	defer ts.Close()
	res, err := http.Get(ts.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var p Problem
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 500 || p.Code != "internal" || strings.Contains(p.Detail, "secret") {
		t.Fatalf("got %d %+v", res.StatusCode, p)
	}
	id := res.Header.Get("X-Request-ID")
	l := logs.String()
	if !strings.Contains(l, "internal secret 0xdeadbeef") || !strings.Contains(l, "goroutine") || !strings.Contains(l, id) {
		t.Errorf("the panic was not logged with its stack and request id:\n%s", l)
	}
	if !strings.Contains(l, `"status":500`) {
		t.Errorf("the request log does not show the 500:\n%s", l)
	}
}

func TestProblemMappingCoversEveryStableCode(t *testing.T) {
	codes := map[string]bool{}
	for _, s := range sentinels {
		codes[s.code] = true
	}
	// Codes made by the HTTP layer itself.
	for _, c := range []string{"invalid_json", "body_too_large", "invalid_if_match", "route_not_found",
		"method_not_allowed", "forbidden", "internal", "unavailable"} {
		codes[c] = true
	}
	for _, c := range strings.Fields(`invalid_json invalid_data body_too_large invalid_tenant_id invalid_isolation
		isolation_unsupported invalid_tier invalid_name invalid_role invalid_collection invalid_record_id
		invalid_cursor invalid_filter invalid_limit invalid_if_match not_found route_not_found
		tenant_not_found key_not_found method_not_allowed unauthenticated forbidden tenant_suspended
		tenant_exists precondition_failed internal unavailable`) {
		if !codes[c] {
			t.Errorf("no mapping produces %s", c)
		}
	}
	for _, s := range sentinels {
		if s.status >= 500 {
			t.Errorf("%v maps to %d: client mistakes are never 5xx", s.err, s.status)
		}
	}
}

func TestUnknownActionsAreDenied(t *testing.T) {
	eng, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(ctx context.Context, r policy.Request) bool {
		d, err := eng.Authorize(ctx, r)
		return err == nil && d.Allow
	}
	op := ingress.Principal{Kind: ingress.KindOperator, ID: "operator", Role: "operator"}.Policy()
	if !allowed(context.Background(), policy.Request{Principal: op, Action: "tenant.list"}) {
		t.Fatal("the operator may not list tenants: the test cannot tell a denial apart")
	}
	for _, action := range []string{"", "tenant.drop_all", "record.read "} {
		if allowed(context.Background(), policy.Request{Principal: op, Action: action}) {
			t.Errorf("action %q was allowed", action)
		}
	}
	if allowed(context.Background(), policy.Request{Principal: policy.Principal{Kind: "root"}, Action: "tenant.list"}) {
		t.Error("an unknown principal kind was allowed")
	}
}

// TestEncodePageMatchesMarshal: the record-by-record page encoder writes
// exactly what json.Marshal of the page writes, whatever the page.
func TestEncodePageMatchesMarshal(t *testing.T) {
	at := time.Date(2026, 11, 26, 1, 2, 3, 456789000, time.UTC)
	rec := func(i int, data string) store.Record {
		return store.Record{ID: fmt.Sprintf("r%03d", i), Collection: "c", Data: json.RawMessage(data),
			Version: int64(i + 1), CreatedAt: at, UpdatedAt: at.Add(time.Duration(i) * time.Second)}
	}
	var many []store.Record
	for i := range 3*store.YieldEvery + 5 {
		many = append(many, rec(i, fmt.Sprintf(`{ "n" : %d, "html": "<a href=\"x\">&</a>", "u": "\u2028é" }`, i)))
	}
	pages := map[string]store.Page{
		"nil items":   {},
		"empty":       {Items: []store.Record{}},
		"one":         {Items: []store.Record{rec(0, `{"a":1}`)}, NextCursor: "abc"},
		"many":        {Items: many, NextCursor: "c<>&\"ursor"},
		"exact yield": {Items: many[:store.YieldEvery]},
	}
	for name, p := range pages {
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		var buf bytes.Buffer
		buf.WriteString("left over")
		buf.Reset()
		if err := encodePage(&buf, p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := buf.Bytes(); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	if err := encodePage(new(bytes.Buffer), store.Page{Items: []store.Record{rec(0, `{"a":`)}}); err == nil {
		t.Error("a page with invalid JSON data encoded without error")
	}
}
