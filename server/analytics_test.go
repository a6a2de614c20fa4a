package server_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
)

// analyticsWorld fills e with tenants holding "orders" records of
// {"amount": 10}: standard tenants (enough to be answered), free ones
// (one fewer than K: suppressed) and an enterprise one with other data.
func analyticsWorld(t *testing.T, e *env, standard, free int) map[string]string {
	t.Helper()
	toks := map[string]string{}
	add := func(id, tier, collection string, records int) {
		tok := e.tenantWithKey(id, "pooled")
		if tier != "standard" {
			e.setTier(id, tier)
		}
		for range records {
			want(t, e.req("POST", "/v1/collections/"+collection+"/records", tok, map[string]any{"amount": 10, "who": id}), 201, "")
		}
		toks[id] = tok
	}
	for i := range standard {
		add(fmt.Sprintf("std%d", i), "standard", "orders", 2)
	}
	for i := range free {
		add(fmt.Sprintf("free%d", i), "free", "orders", 3)
	}
	add("ent0", "enterprise", "invoices", 1) // no orders: backs nothing
	return toks
}

// createAnalyst creates an analyst and returns its token and id.
func (e *env) createAnalyst(name string, budget float64) (token, id string) {
	e.t.Helper()
	r := e.req("POST", "/v1/admin/analysts", e.op, map[string]any{"name": name, "budget": budget})
	want(e.t, r, 201, "")
	if r.header.Get("Cache-Control") != "no-store" {
		e.t.Errorf("the analyst's token is cacheable: %v", r.header)
	}
	m := r.json(e.t)
	return m["token"].(string), m["id"].(string)
}

// remaining is the analyst's budget left, as the operator lists it.
func (e *env) remaining(id string) float64 {
	e.t.Helper()
	r := e.req("GET", "/v1/admin/analysts", e.op, nil)
	want(e.t, r, 200, "")
	if strings.Contains(string(r.body), "bka_") {
		e.t.Fatalf("the analyst list shows a token: %s", r.body)
	}
	for _, a := range r.json(e.t)["items"].([]any) {
		if a := a.(map[string]any); a["id"] == id {
			return a["remaining"].(float64)
		}
	}
	e.t.Fatalf("analyst %s not listed", id)
	return 0
}

type queryResult struct {
	Groups []struct {
		Key   string
		Value string
	}
	Epsilon         float64
	RemainingBudget float64 `json:"remaining_budget"`
	NoiseScale      float64 `json:"noise_scale"`
	K               int
}

func TestAnalyticsQuery(t *testing.T) {
	e := newEnvIn(t, t.TempDir(), server.Options{DisableRateLimit: true})
	testAnalyticsQuery(t, e)
}

func TestAnalyticsQueryOnPostgres(t *testing.T) {
	opts, _ := pgOptions(t)
	opts.DisableRateLimit = true
	testAnalyticsQuery(t, newEnvIn(t, t.TempDir(), opts))
}

func testAnalyticsQuery(t *testing.T, e *env) {
	const k = 5 // the default threshold
	toks := analyticsWorld(t, e, k+1, k-1)
	ana, anaID := e.createAnalyst("ann", 100)
	q := map[string]any{"collection": "orders", "field": "amount", "agg": "sum", "group_by": "tier",
		"lower": 0, "upper": 10, "max_records_per_tenant": 2, "epsilon": 20}
	r := e.req("POST", "/v1/analytics/query", ana, q)
	want(t, r, 200, "")
	var res queryResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	// Only standard, backed by K+1 tenants; free (K-1) and enterprise
	// (no orders) are not even named.
	if len(res.Groups) != 1 || res.Groups[0].Key != "standard" || strings.Contains(string(r.body), "free") {
		t.Fatalf("answer %s: want the standard group only", r.body)
	}
	// Δ = 2 records × 10 = 20, ε = 20: scale 1. The truth is (K+1)·2·10;
	// 25 scales out has probability below 1e-10 (crypto/rand noise).
	got, err := strconv.ParseFloat(res.Groups[0].Value, 64)
	if err != nil || res.NoiseScale != 1 || math.Abs(got-float64((k+1)*20)) > 25 {
		t.Fatalf("answer %s: want %d within 25 noise scales of 1", r.body, (k+1)*20)
	}
	if res.Epsilon != 20 || res.RemainingBudget != 80 || e.remaining(anaID) != 80 || res.K != k {
		t.Fatalf("answer %s: want ε 20 spent of 100", r.body)
	}

	// The audit names the analyst, the query's shape and ε, not the answer.
	r = e.req("GET", "/v1/admin/audit", e.op, nil)
	want(t, r, 200, "")
	var audit struct {
		Items []struct{ Principal, Action, Resource, Decision string }
	}
	if err := json.Unmarshal(r.body, &audit); err != nil {
		t.Fatal(err)
	}
	var last struct{ Principal, Action, Resource, Decision string }
	for _, it := range audit.Items {
		if it.Action == "analytics.query" {
			last = it
		}
	}
	if last.Principal != "analyst:"+anaID || last.Action != "analytics.query" || last.Decision != "allow" ||
		!strings.HasPrefix(last.Resource, "analytics/collections/orders?agg=sum&field=amount&group_by=tier") ||
		!strings.Contains(last.Resource, "epsilon=20") || strings.Contains(last.Resource, res.Groups[0].Value) {
		t.Fatalf("audit entry %+v", last)
	}

	// Too much ε: refused, nothing spent. So is every bad query.
	q["epsilon"] = 80.000001
	want(t, e.req("POST", "/v1/analytics/query", ana, q), 400, "budget_exhausted")
	bad := []struct {
		key  string
		val  any
		code string
	}{
		{"field", "a-b", "invalid_field"}, {"field", "", "invalid_field"}, {"epsilon", 0, "invalid_epsilon"},
		{"epsilon", -1, "invalid_epsilon"}, {"epsilon", 1e-9, "invalid_epsilon"}, {"epsilon", "1", "invalid_json"},
		{"lower", 11, "invalid_bounds"}, {"agg", "avg", "invalid_agg"}, {"group_by", "name", "invalid_group_by"},
		{"collection", "Bad", "invalid_collection"}, {"max_records_per_tenant", -1, "invalid_max_records"},
		{"decimals", 9, "invalid_bounds"}, {"tenant", "std0", "invalid_json"},
	}
	for _, b := range bad {
		bq := map[string]any{}
		for k, v := range q {
			bq[k] = v
		}
		bq["epsilon"], bq[b.key] = 1, b.val
		want(t, e.req("POST", "/v1/analytics/query", ana, bq), 400, b.code)
	}
	want(t, e.req("POST", "/v1/analytics/query", ana, "nope"), 400, "invalid_json")
	if left := e.remaining(anaID); left != 80 {
		t.Fatalf("%g left after refused queries, want 80: a refusal must spend nothing", left)
	}
	// An unknown collection is an empty answer (it still spends its ε).
	r = e.req("POST", "/v1/analytics/query", ana, map[string]any{"collection": "nothing", "agg": "count", "epsilon": 1})
	want(t, r, 200, "")
	if err := json.Unmarshal(r.body, &res); err != nil || len(res.Groups) != 0 {
		t.Fatalf("unknown collection: %s", r.body)
	}

	// An analyst's token reaches no tenant's data and no admin route,
	// act-as or not; tenants and the operator do not reach analytics.
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/collections"}, {"GET", "/v1/collections/orders/records"}, {"POST", "/v1/collections/orders/records"},
		{"GET", "/v1/usage"}, {"GET", "/v1/keys"}, {"GET", "/v1/audit"},
		{"GET", "/v1/admin/tenants"}, {"GET", "/v1/admin/tenants/std0"}, {"GET", "/v1/admin/analysts"},
		{"POST", "/v1/admin/analysts"}, {"GET", "/v1/admin/audit"},
	} {
		r := e.req(c.method, c.path, ana, map[string]any{"amount": 1})
		want(t, r, 403, "forbidden")
		r = e.req(c.method, c.path, ana, map[string]any{"amount": 1}, "Bulkhead-Act-As-Tenant", "std0")
		want(t, r, 403, "forbidden")
		if strings.Contains(string(r.body), "amount") {
			t.Fatalf("%s %s with an analyst token leaked data: %s", c.method, c.path, r.body)
		}
	}
	for _, tok := range []string{e.op, toks["std0"]} {
		want(t, e.req("POST", "/v1/analytics/query", tok, q), 403, "forbidden")
	}
	want(t, e.req("POST", "/v1/analytics/query", "", q), 401, "unauthenticated")
	if left := e.remaining(anaID); left != 79 {
		t.Fatalf("%g left, want 79", left)
	}

	// A revoked analyst is unauthenticated at once.
	want(t, e.req("DELETE", "/v1/admin/analysts/"+anaID, e.op, nil), 204, "")
	want(t, e.req("POST", "/v1/analytics/query", ana, q), 401, "unauthenticated")
	want(t, e.req("DELETE", "/v1/admin/analysts/nope", e.op, nil), 404, "analyst_not_found")
}

func TestCreateAnalystBadInput(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		body any
		code string
	}{
		{map[string]any{"name": "ann", "budget": -1}, "invalid_budget"},
		{map[string]any{"name": "ann", "budget": 0.0000001}, "invalid_budget"},
		{map[string]any{"name": "ann", "budget": 2e6}, "invalid_budget"},
		{map[string]any{"name": "", "budget": 1}, "invalid_name"},
		{map[string]any{"name": "ann", "budget": "1"}, "invalid_json"},
		{map[string]any{"name": "ann", "budget": 1, "tenant": "x"}, "invalid_json"},
	} {
		want(t, e.req("POST", "/v1/admin/analysts", e.op, c.body), 400, c.code)
	}
	r := e.req("GET", "/v1/admin/analysts", e.op, nil)
	want(t, r, 200, "")
	if items := r.json(t)["items"].([]any); len(items) != 0 {
		t.Fatalf("refused creations left analysts: %v", items)
	}
}
