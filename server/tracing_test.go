package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/tracing/otlp"
	"github.com/bulkhead-dev/bulkhead/tracing/otlptest"
)

// tracedEnv is a real server whose TracerProvider exports over OTLP/HTTP
// to a receiver the test started, configured by OTEL_* variables as serve
// is.
func tracedEnv(t *testing.T) (*env, *otlptest.Receiver, *otlp.Provider) {
	t.Helper()
	return tracedEnvWith(t, server.Options{})
}

// tracedEnvWith is tracedEnv with other options for the server.
func tracedEnvWith(t *testing.T, opts server.Options) (*env, *otlptest.Receiver, *otlp.Provider) {
	t.Helper()
	rcv := otlptest.NewReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
	tp, err := otlp.Setup(context.Background(), otlp.Options{ServiceName: "bulkhead-test"})
	if err != nil {
		t.Fatal(err)
	}
	if !tp.Enabled() || tp.Endpoint() != rcv.URL+"/v1/traces" {
		t.Fatalf("tracing enabled %v, endpoint %q; want on, %s/v1/traces", tp.Enabled(), tp.Endpoint(), rcv.URL)
	}
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	opts.TracerProvider = tp
	e := newEnvIn(t, t.TempDir(), opts)
	return e, rcv, tp
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// flush exports every span that has ended and returns them by trace id.
func flush(t *testing.T, tp *otlp.Provider, rcv *otlptest.Receiver) map[string][]otlptest.Span {
	t.Helper()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	byTrace := map[string][]otlptest.Span{}
	for _, s := range rcv.Spans() {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	return byTrace
}

func TestTracesCarryTheCredentialsTenantAndNoSecretOrData(t *testing.T) {
	e, rcv, tp := tracedEnv(t)
	keys := map[string]string{
		"acme":   e.tenantWithKey("acme", "pooled"),
		"globex": e.tenantWithKey("globex", "database"),
	}
	const coll = "canarycoll"
	type sent struct{ tenant, traceID, parent, route string }
	var reqs []sent
	var canaries []string
	for tn, key := range keys {
		recID := "rid-" + randomHex(6)
		value := "value-" + randomHex(6)
		canaries = append(canaries, recID, value)
		path := "/v1/collections/" + coll + "/records/" + recID
		for _, step := range []struct {
			method, route string
			body          any
			status        int
		}{
			{"PUT", "PUT /v1/collections/{c}/records/{id}", map[string]string{"note": value}, 201},
			{"GET", "GET /v1/collections/{c}/records/{id}", nil, 200},
			{"GET", "GET /v1/collections/{c}/records", nil, 200},
		} {
			traceID, parent := randomHex(16), randomHex(8)
			p := path
			if step.route == "GET /v1/collections/{c}/records" {
				p = "/v1/collections/" + coll + "/records?note=eq." + value
			}
			r := e.req(step.method, p, key, step.body, "traceparent", "00-"+traceID+"-"+parent+"-01",
				"tracestate", "vendor=opaque")
			want(t, r, step.status, "")
			reqs = append(reqs, sent{tn, traceID, parent, step.route})
		}
		// The other tenant's record: the same 404 as a missing one, and
		// the trace names only the caller's tenant.
		traceID, parent := randomHex(16), randomHex(8)
		want(t, e.req("GET", "/v1/collections/"+coll+"/records/"+recID+"-missing", key, nil,
			"traceparent", "00-"+traceID+"-"+parent+"-01"), 404, "not_found")
		reqs = append(reqs, sent{tn, traceID, parent, "GET /v1/collections/{c}/records/{id}"})
	}
	byTrace := flush(t, tp, rcv)

	for _, q := range reqs {
		spans := byTrace[q.traceID]
		var root *otlptest.Span
		names := map[string]int{}
		for i, s := range spans {
			names[s.Name]++
			if got := s.Attributes["bulkhead.tenant"]; got != q.tenant {
				t.Errorf("%s %s: span %q has bulkhead.tenant %q, want %q (the credential's)", q.tenant, q.route, s.Name, got, q.tenant)
			}
			if s.ParentSpanID == q.parent {
				root = &spans[i]
			}
		}
		if root == nil {
			t.Fatalf("%s %s: no span is the child of the traceparent's span %s; got %v", q.tenant, q.route, q.parent, names)
		}
		if _, tmpl, _ := strings.Cut(q.route, " "); root.Name != q.route || root.Attributes["http.route"] != tmpl || root.Kind != 2 /* server */ {
			t.Errorf("request span %q (route %q, kind %v), want %q, a server span", root.Name, root.Attributes["http.route"], root.Kind, q.route)
		}
		for _, n := range []string{"ingress.gate", "store.tx"} {
			if names[n] != 1 {
				t.Errorf("%s %s: %d spans %q, want 1 (spans: %v)", q.tenant, q.route, names[n], n, names)
			}
		}
		if names["ingress.authenticate"]+names["ingress.authorize"]+names["ingress.admit"] != 0 {
			t.Errorf("%s %s: the gate's steps are spans without TraceSteps: %v", q.tenant, q.route, names)
		}
		for _, s := range spans {
			if s.Name == "store.tx" || strings.HasPrefix(s.Name, "ingress.") {
				if s.ParentSpanID != root.SpanID {
					t.Errorf("%s: span %q is not a child of the request span", q.route, s.Name)
				}
			}
			if s.Name == "ingress.gate" && (len(s.Events) != 0 || s.Attributes["bulkhead.authentication_us"] == "" ||
				s.Attributes["bulkhead.authorization_us"] == "" ||
				s.Attributes["bulkhead.action"] == "" || s.Attributes["bulkhead.admission.wait_us"] == "" ||
				s.Attributes["bulkhead.principal.kind"] != "tenant_key") {
				t.Errorf("%s: gate span events %v, attributes %v", q.route, s.Events, s.Attributes)
			}
			if s.Name == "store.tx" {
				wantRO := "true"
				if strings.HasPrefix(q.route, "PUT") {
					wantRO = "false"
				}
				if s.Attributes["bulkhead.store.read_only"] != wantRO || s.Attributes["bulkhead.store.shard"] != server.LocalShard ||
					s.Attributes["db.system.name"] != "sqlite" || (s.Attributes["bulkhead.store.served_by"] != "primary" &&
					s.Attributes["bulkhead.store.replica_requested"] == "true") {
					t.Errorf("store.tx attributes %v", s.Attributes)
				}
				wantMode := map[string]string{"acme": "pooled", "globex": "database"}[q.tenant]
				if s.Attributes["bulkhead.store.mode"] != wantMode {
					t.Errorf("store.tx mode %q, want %q", s.Attributes["bulkhead.store.mode"], wantMode)
				}
			}
		}
		if strings.HasPrefix(q.route, "GET") && strings.Contains(q.route, "{id}") && root.Attributes["http.response.status_code"] == "404" &&
			root.Attributes["bulkhead.problem.code"] != "not_found" {
			t.Errorf("a 404's request span has problem code %q, want not_found", root.Attributes["bulkhead.problem.code"])
		}
	}
	if len(reqs) != 8 {
		t.Fatalf("sent %d traced requests, want 8", len(reqs))
	}
	// Nothing secret, no record id, value or collection name, no raw path
	// anywhere in what was exported.
	secrets := append([]string{keys["acme"], keys["globex"], e.op, coll, "records/rid-", "note=", "eq."}, canaries...)
	for _, s := range secrets {
		if rcv.Contains(s) {
			t.Errorf("the exported spans contain %q", s)
		}
	}
	for _, k := range []string{keys["acme"], keys["globex"]} { // no part of a key either
		// The secret is the key's last 43 characters (32 random bytes,
		// base64url): it can hold '_' itself, so it is not found by
		// splitting at the last one (which could leave two characters that
		// random span ids happen to hold).
		if rcv.Contains(k[len(k)-43:]) {
			t.Errorf("the exported spans contain the secret part of a key")
		}
	}
}

func TestTracesRecordRefusalsByTheirProblemCode(t *testing.T) {
	e, rcv, tp := tracedEnv(t)
	key := e.tenantWithKey("acme", "pooled")
	forged := "bk_" + randomHex(20)
	traceID := randomHex(16)
	want(t, e.req("GET", "/v1/collections/c/records/x", forged, nil, "traceparent", "00-"+traceID+"-"+randomHex(8)+"-01"),
		401, "unauthenticated")
	readerTrace := randomHex(16)
	want(t, e.req("GET", "/v1/collections/c/records/x", key, nil, "traceparent", "00-"+readerTrace+"-"+randomHex(8)+"-01",
		"Bulkhead-Act-As-Tenant", "globex"), 403, "forbidden")
	byTrace := flush(t, tp, rcv)

	var auth, req bool
	for _, s := range byTrace[traceID] {
		if s.Attributes["bulkhead.tenant"] != "" {
			t.Errorf("an unauthenticated request's span %q names tenant %q", s.Name, s.Attributes["bulkhead.tenant"])
		}
		switch s.Name {
		case "ingress.gate":
			auth = s.StatusCode == 2 && s.Attributes["bulkhead.problem.code"] == "unauthenticated"
		case "GET /v1/collections/{c}/records/{id}":
			req = s.Attributes["http.response.status_code"] == "401" && s.Attributes["bulkhead.problem.code"] == "unauthenticated"
		}
	}
	if !auth || !req {
		t.Errorf("401: gate span failed with unauthenticated %v, request span 401 unauthenticated %v: %+v", auth, req, byTrace[traceID])
	}
	// A tenant key naming another tenant in the act-as header: refused,
	// and its spans name the key's tenant, never the one in the header.
	found := false
	for _, s := range byTrace[readerTrace] {
		if tn := s.Attributes["bulkhead.tenant"]; tn != "" && tn != "acme" {
			t.Errorf("span %q names tenant %q, not the credential's acme", s.Name, tn)
		}
		if s.Attributes["bulkhead.problem.code"] == "forbidden" && s.Attributes["http.response.status_code"] == "403" {
			found = true
		}
	}
	if !found {
		t.Errorf("no request span with 403 forbidden: %+v", byTrace[readerTrace])
	}
	if rcv.Contains(forged) || rcv.Contains(key) || rcv.Contains("globex") {
		t.Error("the exported spans contain a token or the act-as header's value")
	}
}

// A request the rate limit refuses has its gate's span failed with the
// decision and the problem code, the tenant, and how long the admission
// step took; it opens no transaction.
func TestTracesRecordThrottlingOnTheGate(t *testing.T) {
	e, rcv, tp := tracedEnvWith(t, server.Options{RateLimits: tinyBurst})
	key := e.tenantWithKey("acme", "pooled")
	var throttled string
	for range 5 { // a burst of 3
		id := randomHex(16)
		if r := e.req("GET", "/v1/collections/c/records/x", key, nil, "traceparent", "00-"+id+"-"+randomHex(8)+"-01"); r.status == 429 {
			throttled = id
		}
	}
	if throttled == "" {
		t.Fatal("no request was rate-limited")
	}
	gate := false
	for _, s := range flush(t, tp, rcv)[throttled] {
		switch s.Name {
		case "ingress.gate":
			gate = s.StatusCode == 2 && s.Attributes["bulkhead.decision"] == "throttled" &&
				s.Attributes["bulkhead.problem.code"] == "rate_limited" && s.Attributes["bulkhead.tenant"] == "acme" &&
				s.Attributes["bulkhead.admission.wait_us"] != ""
		case "store.tx":
			t.Error("a throttled request opened a transaction")
		}
	}
	if !gate {
		t.Errorf("throttled: no gate span failed as throttled, with the tenant and the admission's wait: %+v", flush(t, tp, rcv)[throttled])
	}
}

// With TraceSteps each of the gate's steps is a span under the gate's,
// with the tenant, and the step that refused a request is the one failed.
func TestTracesCanMakeEachGateStepASpan(t *testing.T) {
	e, rcv, tp := tracedEnvWith(t, server.Options{TraceSteps: true, RateLimits: tinyBurst})
	key := e.tenantWithKey("acme", "pooled")
	traces := map[int]string{}                                                     // by status: the last request's trace
	for _, tok := range []string{"bk_" + randomHex(20), key, key, key, key, key} { // a forged key, then past a burst of 3
		id := randomHex(16)
		r := e.req("GET", "/v1/collections/c/records/x", tok, nil, "traceparent", "00-"+id+"-"+randomHex(8)+"-01")
		traces[r.status] = id
	}
	byTrace := flush(t, tp, rcv)
	steps := func(status int) map[string]otlptest.Span {
		t.Helper()
		out := map[string]otlptest.Span{}
		var gate string
		for _, s := range byTrace[traces[status]] {
			out[s.Name] = s
			if s.Name == "ingress.gate" {
				gate = s.SpanID
			}
		}
		for n, s := range out {
			if strings.HasPrefix(n, "ingress.") && n != "ingress.gate" && s.ParentSpanID != gate {
				t.Errorf("%d: step span %q is not under the gate's", status, n)
			}
		}
		return out
	}
	ok := steps(404) // the record does not exist: every step passed
	for _, n := range []string{"ingress.authenticate", "ingress.authorize", "ingress.admit"} {
		if s, found := ok[n]; !found || s.StatusCode == 2 || s.Attributes["bulkhead.tenant"] != "acme" {
			t.Errorf("404: step %q found %v, %+v", n, found, s)
		}
	}
	if ok["ingress.authenticate"].Attributes["bulkhead.principal.kind"] != "tenant_key" {
		t.Errorf("authentication step %+v", ok["ingress.authenticate"])
	}
	denied := steps(401)
	if s := denied["ingress.authenticate"]; s.StatusCode != 2 || s.Attributes["bulkhead.problem.code"] != "unauthenticated" {
		t.Errorf("401: authentication step %+v, want failed unauthenticated", s)
	}
	if _, found := denied["ingress.authorize"]; found {
		t.Error("401: a request refused at authentication has a policy step")
	}
	throttled := steps(429)
	if s := throttled["ingress.admit"]; s.StatusCode != 2 || s.Attributes["bulkhead.decision"] != "throttled" ||
		s.Attributes["bulkhead.problem.code"] != "rate_limited" || s.Attributes["bulkhead.tenant"] != "acme" {
		t.Errorf("429: admission step %+v, want failed throttled", s)
	}
	if s := throttled["ingress.authorize"]; s.StatusCode == 2 {
		t.Errorf("429: the policy step failed: %+v", s)
	}
}

func TestGarbageTraceparentsAreIgnored(t *testing.T) {
	e, rcv, tp := tracedEnv(t)
	key := e.tenantWithKey("acme", "pooled")
	want(t, e.req("PUT", "/v1/collections/c/records/r1", key, map[string]int{"n": 1}), 201, "")
	flush(t, tp, rcv)
	rcv.Reset()
	valid := randomHex(16)
	bad := []string{
		"garbage",
		"00-" + valid + "-" + randomHex(8) + "-01-extra",                         // version 00 has no extra field
		"00-" + strings.Repeat("0", 32) + "-" + randomHex(8) + "-01",             // all-zero trace id
		"00-" + valid + "-" + strings.Repeat("0", 16) + "-01",                    // all-zero span id
		"ff-" + valid + "-" + randomHex(8) + "-01",                               // version ff is invalid
		"00-" + strings.ToUpper(valid) + "-" + randomHex(8) + "-01",              // upper case hex
		"00-" + valid + "-" + randomHex(8) + "-01" + strings.Repeat("a", 16<<10), // oversized
	}
	for _, tpv := range bad {
		r := e.req("GET", "/v1/collections/c/records/r1", key, nil, "traceparent", tpv,
			"tracestate", strings.Repeat("k=v,", 100)+"bad key=v")
		if r.status != 200 {
			t.Fatalf("traceparent %.40q: status %d, want 200: %s", tpv, r.status, r.body)
		}
	}
	byTrace := flush(t, tp, rcv)
	if _, ok := byTrace[valid]; ok {
		t.Errorf("a span joined trace %s from a malformed traceparent", valid)
	}
	roots := 0
	for _, spans := range byTrace {
		for _, s := range spans {
			if s.Kind == 2 {
				if s.ParentSpanID != "" {
					t.Errorf("request span %q has parent %s from a malformed traceparent", s.Name, s.ParentSpanID)
				}
				if s.TraceState != "" {
					t.Errorf("request span has trace state %q from a malformed header", s.TraceState)
				}
				roots++
			}
		}
	}
	if roots != len(bad) {
		t.Errorf("%d request spans, want %d (a new trace each)", roots, len(bad))
	}
	if rcv.Contains("garbage") {
		t.Error("the traceparent's text was exported")
	}
}
