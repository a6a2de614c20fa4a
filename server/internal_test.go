package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/telemetry"
)

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
		codes[s.Code] = true
	}
	// The sentinels of package store, which recordapi maps.
	for _, err := range []error{store.ErrNotFound, store.ErrPrecondition, store.ErrConflict,
		store.ErrInvalidCollection, store.ErrInvalidRecordID, store.ErrInvalidData, store.ErrInvalidCursor,
		store.ErrInvalidFilter, store.ErrInvalidLimit, store.ErrIsolationUnsupported, store.ErrInvalidIsolation,
		store.ErrUnknownTenant} {
		e, ok := toAPIError(err)
		if !ok || e.Status >= 500 {
			t.Errorf("%v maps to %v: client mistakes are never 5xx", err, e)
			continue
		}
		codes[e.Code] = true
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
		if s.Status >= 500 {
			t.Errorf("%v maps to %d: client mistakes are never 5xx", s.Err, s.Status)
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
