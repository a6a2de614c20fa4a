package server_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
)

// leakSecrets are the values that must never leave through telemetry:
// credentials, and record data (canaries and an e-mail address).
type leakSecrets struct {
	byLabel map[string]string
	// windowed are the labels of random secrets of which any 16
	// characters in a row count as a leak.
	windowed map[string]bool
}

func newLeakSecrets() *leakSecrets {
	return &leakSecrets{byLabel: map[string]string{}, windowed: map[string]bool{}}
}

// leakWindow is how many characters of a random secret in a row are a leak
// (96 bits of base64url: no text holds them by chance).
const leakWindow = 16

// add registers v under label.
func (s *leakSecrets) add(label, v string) { s.byLabel[label] = v }

// addToken registers a credential and the parts of it that are secret on
// their own: a Bulkhead token's last 43 characters (its secret), a JWT's
// payload and signature.
func (s *leakSecrets) addToken(label, tok string) {
	s.add(label, tok)
	if strings.HasPrefix(tok, "bk") && len(tok) > 43 {
		s.add(label+" (secret part)", tok[len(tok)-43:])
		s.windowed[label+" (secret part)"] = true
	}
	if parts := strings.Split(tok, "."); len(parts) == 3 {
		s.add(label+" (payload)", parts[1])
		if len(parts[2]) >= leakWindow {
			s.add(label+" (signature)", parts[2])
			s.windowed[label+" (signature)"] = true
		}
	}
}

// found returns the labels of the secrets text holds, sorted.
func (s *leakSecrets) found(text string) []string {
	return s.foundBy(func(v string) bool { return strings.Contains(text, v) })
}

// foundBy returns the labels of the secrets that contains reports, sorted.
func (s *leakSecrets) foundBy(contains func(string) bool) []string {
	var out []string
	for label, v := range s.byLabel {
		if contains(v) {
			out = append(out, label)
			continue
		}
		for i := 0; s.windowed[label] && i+leakWindow <= len(v); i++ {
			if contains(v[i : i+leakWindow]) {
				out = append(out, label+" (16 characters of it)")
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// canary is a random string no code makes by chance.
func canary(kind string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "canary-" + kind + "-" + hex.EncodeToString(b[:])
}

// fakeToken has the shape of a tenant API key but no key behind it.
func fakeToken(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return prefix + "qqqqqqqqqqqqqqqqqqqq_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// leakWorld is a server with tenants alpha and beta (each trusting its own
// JWT issuer), the secrets pushed through it, and what telemetry it made.
type leakWorld struct {
	e      *env
	logs   func() string
	secret *leakSecrets
	// responses are the bodies of telemetry endpoints read after the
	// traffic (/metrics, ...), by name; each is scanned like the log.
	responses map[string]string
}

// newLeakWorld starts a real server logging at debug. redact false gives
// it a plain JSON logger and DisableLogRedaction: the control that shows
// what the scan would catch without redaction.
func newLeakWorld(t *testing.T, opts server.Options, redact bool) *leakWorld {
	t.Helper()
	logs := &syncBuffer{}
	if redact {
		opts.Logger = nil // the test env's: telemetry.NewLogger at debug
	} else {
		opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		opts.DisableLogRedaction = true
	}
	e, p, clk := jwtEnv(t, opts)
	w := &leakWorld{e: e, secret: newLeakSecrets(), responses: map[string]string{}}
	w.logs = e.logs.String
	if !redact {
		w.logs = logs.String
	}
	w.push(t, p, clk)
	return w
}

// push sends secrets and record data through every path of the API the
// test knows: credentials valid, invalid, malformed and of the wrong
// tenant in headers, queries and paths; records with canaries and an
// e-mail address; error paths; key, agent and analyst creation (whose
// tokens are answered once); JWT refusals; the change feed and exports.
func (w *leakWorld) push(t *testing.T, p *idp, clk *clock) {
	e, sec := w.e, w.secret
	sec.addToken("operator token", e.op)
	e.setTier("alpha", "enterprise")
	e.setTier("beta", "enterprise")
	alpha, _ := e.createKey("alpha", "admin")
	sec.addToken("alpha's API key", alpha)
	beta, betaKeyID := e.createKey("beta", "writer")
	sec.addToken("beta's API key", beta)
	now := clk.now()
	user := p.token(t, "a", p.claims("a", "alpha", "writer", now))
	sec.addToken("alpha user's JWT", user)
	expired := p.token(t, "a", p.claims("a", "alpha", "writer", now.Add(-time.Hour)))
	sec.addToken("expired JWT", expired)
	foreign := p.token(t, "b", p.claims("a", "alpha", "admin", now)) // signed by beta's issuer's key
	sec.addToken("JWT signed by the wrong key", foreign)
	fake := fakeToken("bk_")
	sec.addToken("unknown API key", fake)

	data := canary("record")
	email := "ann." + canary("mail")[7:] + "@example.com"
	sec.add("record canary", data)
	sec.add("e-mail address", email)
	sec.add("nested canary", canary("nested"))
	sec.add("filter canary", canary("filter"))
	record := `{"note":"` + data + `","owner":"` + email + `","deep":{"x":["` + sec.byLabel["nested canary"] + `"]}}`

	// The data plane, as each kind of credential.
	want(t, e.req("PUT", "/v1/collections/notes/records/n1", alpha, record), 201, "")
	want(t, e.req("PUT", "/v1/collections/notes/records/n2", user, record, "X-Request-ID", e.op), 201, "")
	want(t, e.req("POST", "/v1/collections/notes/records", beta, record), 201, "")
	want(t, e.req("GET", "/v1/collections/notes/records/n1", alpha, nil), 200, "")
	want(t, e.req("GET", "/v1/collections/notes/records?note=eq."+sec.byLabel["filter canary"], alpha, nil), 200, "")
	want(t, e.req("GET", "/v1/collections/notes/records?owner=eq."+email, alpha, nil), 200, "")
	want(t, e.req("GET", "/v1/collections", user, nil), 200, "")
	want(t, e.req("GET", "/v1/usage", alpha, nil), 200, "")
	want(t, e.req("GET", "/v1/audit", alpha, nil), 200, "")
	want(t, e.req("GET", "/v1/export", alpha, nil), 200, "")

	// A token as a record id, in a path, in a query, in X-Request-ID.
	want(t, e.req("PUT", "/v1/collections/notes/records/"+beta, alpha, record), 201, "")
	want(t, e.req("GET", "/v1/collections/notes/records/"+e.op, alpha, nil), 404, "not_found")
	want(t, e.req("GET", "/v1/collections/notes/records?cursor="+alpha, alpha, nil), 400, "invalid_cursor")
	e.req("GET", "/v1/collections?access_token="+alpha+"&token="+beta, "", nil)
	want(t, e.req("GET", "/v2/"+e.op+"/"+email, "", nil), 404, "route_not_found")
	want(t, e.req("GET", "/v1/collections", alpha, nil, "X-Request-ID", e.op), 200, "")
	want(t, e.req("GET", "/v1/collections", alpha, nil, "X-Request-ID", strings.TrimPrefix(alpha, "bk_")[:60]), 200, "")

	// Credentials refused: invalid, malformed, expired, of the wrong
	// tenant, in the wrong header or scheme, several at once.
	for _, tok := range []string{fake, fake + "x", "bk_" + fake, expired, foreign, user + "x", strings.ReplaceAll(user, ".", "")} {
		want(t, e.req("GET", "/v1/collections/notes/records/n1", tok, nil), 401, "unauthenticated")
	}
	for _, hdr := range [][]string{
		{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("ann:"+alpha))},
		{"Authorization", "bearer " + alpha},
		{"Authorization", "Token " + alpha},
		{"Authorization", "Bearer " + alpha + " " + beta},
		{"Authorization", "Bearer\t" + e.op},
	} {
		r := e.req("GET", "/v1/collections", "", nil, hdr...)
		if r.status != 401 && r.status != 400 && r.status != 200 {
			t.Fatalf("%s: %d %s", hdr[1], r.status, r.body)
		}
	}
	want(t, e.req("GET", "/v1/collections/notes/records/n1", beta, nil), 404, "not_found")                   // another tenant's record
	want(t, e.req("GET", "/v1/admin/tenants/alpha", alpha, nil), 403, "forbidden")                           // a tenant key on the control plane
	want(t, e.req("GET", "/v1/collections", alpha, nil, "Bulkhead-Act-As-Tenant", "beta"), 403, "forbidden") // act-as with a tenant key
	want(t, e.req("GET", "/v1/collections", e.op, nil, "Bulkhead-Act-As-Tenant", data), 403, "")

	// Bad bodies, conflicts, preconditions, sizes.
	want(t, e.req("PUT", "/v1/collections/notes/records/n3", alpha, `{"note":"`+data+`", "owner": "`+email), 400, "")
	want(t, e.req("PUT", "/v1/collections/notes/records/n3", alpha, `["`+data+`"]`), 400, "")
	want(t, e.req("PUT", "/v1/collections/"+data+"!/records/n3", alpha, record), 400, "")
	want(t, e.req("PUT", "/v1/collections/notes/records/n1", alpha, record, "If-Match", `"`+data+`"`), 400, "invalid_if_match")
	want(t, e.req("PUT", "/v1/collections/notes/records/n1", alpha, record, "If-Match", `"999"`), 412, "")
	want(t, e.req("POST", "/v1/admin/tenants", e.op, map[string]string{"id": "alpha"}), 409, "")
	want(t, e.req("POST", "/v1/admin/tenants", e.op, map[string]string{"id": "no such id!"}), 400, "")
	want(t, e.req("PUT", "/v1/collections/notes/records/big", alpha, `{"note":"`+data+strings.Repeat("x", 2<<20)+`"}`), 413, "")
	want(t, e.req("DELETE", "/v1/collections/notes/records/n1", alpha, nil, "If-Match", `"998"`), 412, "")
	want(t, e.req("PATCH", "/v1/collections/notes/records/n1", alpha, record), 405, "")
	e.req("GET", "/v1/collections/notes/records/n2", alpha, nil, "Bulkhead-Read-After", alpha)

	// Secrets answered once: keys (by the operator and self-service),
	// support agents, analysts. None may be logged.
	r := e.req("POST", "/v1/keys", alpha, map[string]string{"role": "reader", "name": email})
	want(t, r, 201, "")
	sec.addToken("self-service key", r.json(t)["token"].(string))
	want(t, e.req("DELETE", "/v1/admin/tenants/beta/keys/"+betaKeyID, e.op, nil), 204, "")
	want(t, e.req("GET", "/v1/collections", beta, nil), 401, "unauthenticated") // a revoked key
	r = e.req("POST", "/v1/admin/support-agents", e.op, map[string]string{"name": "sam"})
	want(t, r, 201, "")
	agent, agentID := r.json(t)["token"].(string), r.json(t)["id"].(string)
	sec.addToken("support agent token", agent)
	want(t, e.req("GET", "/v1/collections", agent, nil, "Bulkhead-Act-As-Tenant", "alpha"), 403, "forbidden") // no grant yet
	want(t, e.req("POST", "/v1/admin/tenants/alpha/grants", e.op,
		`{"agent_id":"`+agentID+`","reason":"ticket `+email+`","expires_in":"1h"}`), 201, "")
	want(t, e.req("GET", "/v1/collections/notes/records/n1", agent, nil, "Bulkhead-Act-As-Tenant", "alpha"), 200, "")
	want(t, e.req("PUT", "/v1/collections/notes/records/n1", agent, record, "Bulkhead-Act-As-Tenant", "alpha"), 403, "forbidden")
	ana, _ := e.createAnalyst("ann", 10)
	sec.addToken("analyst token", ana)
	e.req("POST", "/v1/analytics/query", ana, map[string]any{"collection": "notes", "field": "amount", "agg": "sum",
		"group_by": "tier", "lower": 0, "upper": 10, "max_records_per_tenant": 2, "epsilon": 1})
	want(t, e.req("POST", "/v1/analytics/query", alpha, nil), 403, "")

	// The change feed: a stream that carries the record, positions that
	// are tokens.
	s, sr := e.openStream(alpha, "")
	want(t, sr, 200, "")
	want(t, e.req("PUT", "/v1/collections/feed/records/f1", alpha, record), 201, "")
	if ev := s.next(t); ev.ev.ID != "f1" {
		t.Fatalf("the feed did not carry the change: %+v", ev)
	}
	s.close()
	_, sr = e.openStream(alpha, "", "Last-Event-ID", beta)
	want(t, sr, 400, "")
	_, sr = e.openStream(alpha, "after="+e.op)
	if sr.status != 400 {
		t.Fatalf("a token as the position: %d %s", sr.status, sr.body)
	}

	// Tenant lifecycle: a tenant deleted and created again with its id.
	want(t, e.req("DELETE", "/v1/admin/tenants/beta", e.op, nil), 204, "")
	e.createTenant("beta", "pooled")
	want(t, e.req("GET", "/v1/collections", beta, nil), 401, "unauthenticated")

	w.read(t, "GET /metrics", "/metrics", "")
	// The audit log names privileged acts (the dashboard shows them): what
	// the operator typed as a tenant id or an analyst as a query's field is
	// theirs to see, so the traffic above puts no secret there.
	// Per-tenant health, as the operator and as the tenant see it.
	w.read(t, "GET /v1/admin/tenants/alpha/health", "/v1/admin/tenants/alpha/health", e.op)
	w.read(t, "GET /v1/admin/tenants/beta/health", "/v1/admin/tenants/beta/health", e.op)
	w.read(t, "GET /v1/health (alpha's key)", "/v1/health", alpha)
	w.read(t, "GET /v1/health (alpha's user)", "/v1/health", user)
	w.read(t, "GET /v1/admin/audit", "/v1/admin/audit?limit=1000", e.op)
	w.read(t, "GET /v1/audit (alpha)", "/v1/audit?limit=1000", alpha)
}

// read GETs path with token (200 wanted) and keeps the body for scan.
func (w *leakWorld) read(t *testing.T, name, path, token string) {
	t.Helper()
	r := w.e.req("GET", path, token, nil)
	want(t, r, 200, "")
	w.responses[name] = string(r.body)
}

// scan fails t for each secret found in the log or a telemetry response.
func (w *leakWorld) scan(t *testing.T) {
	t.Helper()
	logs := w.logs()
	if !strings.Contains(logs, `"msg":"http request"`) || !strings.Contains(logs, `"msg":"jwt refused"`) {
		t.Fatalf("the log lacks request or debug lines; the scan would prove nothing:\n%s", logs)
	}
	if leaks := w.secret.found(logs); len(leaks) > 0 {
		t.Errorf("the log holds: %s", strings.Join(leaks, ", "))
		for _, l := range leaks {
			t.Logf("%s: in line %q", l, lineWith(logs, w.secret.byLabel[strings.TrimSuffix(l, " (16 characters of it)")]))
		}
	}
	for name, body := range w.responses {
		if body == "" {
			t.Errorf("%s: empty response", name)
		}
		if leaks := w.secret.found(body); len(leaks) > 0 {
			t.Errorf("%s holds: %s", name, strings.Join(leaks, ", "))
		}
	}
}

func lineWith(text, s string) string {
	for l := range strings.SplitSeq(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestNoSecretOrRecordDataLeavesThroughTelemetry pushes credentials and
// record data through every path the test knows and finds none of them in
// the server's log (at debug), its telemetry responses (/metrics, health,
// audit) or the operator dashboard's page and API answers.
func TestNoSecretOrRecordDataLeavesThroughTelemetry(t *testing.T) {
	w := newLeakWorld(t, server.Options{}, true)
	w.dashboard(t, w.secret.byLabel["alpha's API key"], w.secret.byLabel["alpha user's JWT"],
		w.secret.byLabel["unknown API key"]+" "+w.secret.byLabel["e-mail address"])
	w.scan(t)
}

// TestNoSecretOrRecordDataLeavesThroughTelemetryOnPostgres runs the same
// on PostgreSQL, whose errors say more than SQLite's.
func TestNoSecretOrRecordDataLeavesThroughTelemetryOnPostgres(t *testing.T) {
	opts, _ := pgOptions(t)
	w := newLeakWorld(t, opts, true)
	w.dashboard(t, w.secret.byLabel["alpha's API key"])
	w.scan(t)
}

// TestLeakScanCatchesWhatRedactionHides is the control: the same traffic
// with redaction off leaves credentials in the log (a client's
// X-Request-ID is logged as client_request_id, and an operator token fits
// its rules), so the scan above can fail, and it is the redaction that
// makes it pass.
func TestLeakScanCatchesWhatRedactionHides(t *testing.T) {
	w := newLeakWorld(t, server.Options{}, false)
	leaks := w.secret.found(w.logs())
	t.Logf("without redaction the log holds: %s", strings.Join(leaks, ", "))
	if !slices.Contains(leaks, "operator token") {
		t.Errorf("without redaction the operator token sent as X-Request-ID should be in the log; found only %v", leaks)
	}
}
