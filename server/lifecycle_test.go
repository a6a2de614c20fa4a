package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/telemetry"
)

// serving is a server run with Serve on a loopback listener.
type serving struct {
	srv  *server.Server
	base string
	stop context.CancelFunc
	done chan error
}

func serve(t *testing.T, dir string, logs io.Writer) *serving {
	t.Helper()
	s, err := server.Open(context.Background(), server.Options{DataDir: dir, Logger: telemetry.NewLogger(logs, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sv := &serving{srv: s, base: "http://" + ln.Addr().String(), stop: cancel, done: make(chan error, 1)}
	go func() { sv.done <- s.Serve(ctx, ln) }()
	return sv
}

// shutdown cancels Serve, checks it returned nil, and closes the server.
func (sv *serving) shutdown(t *testing.T) {
	t.Helper()
	sv.stop()
	if err := <-sv.done; err != nil {
		t.Fatalf("Serve returned %v after a graceful shutdown", err)
	}
	if err := sv.srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func call(t *testing.T, method, url, token, body string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func TestDurabilityAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	logs := &syncBuffer{}
	sv := serve(t, dir, logs)
	op, err := server.ReadOperatorToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, mode := range modes {
		id := "t-" + mode
		want(t, call(t, "POST", sv.base+"/v1/admin/tenants", op, fmt.Sprintf(`{"id":%q,"isolation":%q}`, id, mode)), 201, "")
		r := call(t, "POST", sv.base+"/v1/admin/tenants/"+id+"/keys", op, `{"role":"writer"}`)
		want(t, r, 201, "")
		keys[mode] = r.json(t)["token"].(string)
		for i := 0; i < 20; i++ {
			want(t, call(t, "PUT", fmt.Sprintf("%s/v1/collections/c%d/records/r%d", sv.base, i%3, i), keys[mode],
				fmt.Sprintf(`{"i":%d,"mode":%q}`, i, mode)), 201, "")
		}
		want(t, call(t, "PUT", sv.base+"/v1/collections/c0/records/r0", keys[mode], `{"i":0,"v":2}`), 200, "")
	}
	sv.shutdown(t)

	sv = serve(t, dir, logs)
	defer sv.shutdown(t)
	op2, err := server.ReadOperatorToken(dir)
	if err != nil || op2 != op {
		t.Fatalf("the operator token changed across a restart (err %v)", err)
	}
	for _, mode := range modes {
		for i := 0; i < 20; i++ {
			r := call(t, "GET", fmt.Sprintf("%s/v1/collections/c%d/records/r%d", sv.base, i%3, i), keys[mode], "")
			want(t, r, 200, "")
			wantBody := fmt.Sprintf(`"data":{"i":%d,"mode":%q}`, i, mode)
			if i == 0 {
				wantBody = `"data":{"i":0,"v":2}`
			}
			if !strings.Contains(string(r.body), wantBody) {
				t.Fatalf("%s r%d after restart: %s", mode, i, r.body)
			}
		}
		// Cursors made before the restart stay valid: the key is kept.
		r := call(t, "GET", sv.base+"/v1/collections/c1/records?limit=2", keys[mode], "")
		want(t, r, 200, "")
		r = call(t, "GET", sv.base+"/v1/admin/tenants/t-"+mode, op, "")
		if u := r.json(t)["usage"].(map[string]any); u["records"] != float64(20) || u["collections"] != float64(3) {
			t.Fatalf("usage after restart: %s", r.body)
		}
	}
	for _, f := range []string{"operator.token", "cursor.key"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
}

func TestOpenCreatesThePrivateDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fresh", "data")
	logs := &syncBuffer{}
	s, err := server.Open(context.Background(), server.Options{DataDir: dir, Logger: telemetry.NewLogger(logs, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v %v", fi.Mode().Perm(), err)
	}
	if s.OperatorTokenPath() != filepath.Join(dir, "operator.token") {
		t.Errorf("OperatorTokenPath %q", s.OperatorTokenPath())
	}
	tok, err := server.ReadOperatorToken(dir)
	if err != nil || !strings.HasPrefix(tok, "bko_") || len(tok) != 4+43 {
		t.Fatalf("operator token %q (%v)", tok, err)
	}
	if !strings.Contains(logs.String(), s.OperatorTokenPath()) || strings.Contains(logs.String(), tok) {
		t.Errorf("the log must name the token's path and never the token:\n%s", logs.String())
	}
	if _, err := server.Open(context.Background(), server.Options{}); err == nil {
		t.Error("Open without a DataDir succeeded")
	}
}

// TestGracefulShutdownLetsAnInFlightRequestFinish starts a PUT whose
// handler is waiting for the body, cancels Serve, then sends the body: the
// request must complete and be stored, and Serve must return nil.
func TestGracefulShutdownLetsAnInFlightRequestFinish(t *testing.T) {
	dir := t.TempDir()
	sv := serve(t, dir, io.Discard)
	op, _ := server.ReadOperatorToken(dir)
	want(t, call(t, "POST", sv.base+"/v1/admin/tenants", op, `{"id":"acme"}`), 201, "")
	r := call(t, "POST", sv.base+"/v1/admin/tenants/acme/keys", op, `{"role":"writer"}`)
	tok := r.json(t)["token"].(string)

	conn, err := net.Dial("tcp", strings.TrimPrefix(sv.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"in":"flight"}`
	fmt.Fprintf(conn, "PUT /v1/collections/notes/records/inflight HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", tok, len(body))
	br := bufio.NewReader(conn)
	// The server sends 100 Continue when the handler starts reading the
	// body: from here on the request is in flight.
	cont, err := http.ReadResponse(br, nil)
	if err != nil || cont.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue, got %v %v", cont, err)
	}
	sv.stop()
	select {
	case err := <-sv.done:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	default:
	}
	if _, err := io.WriteString(conn, body); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the in-flight request was cut off: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("in-flight PUT: %d", res.StatusCode)
	}
	if err := <-sv.done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(sv.base, "http://")); err == nil {
		t.Error("the listener still accepts after shutdown")
	}
	if err := sv.srv.Close(); err != nil {
		t.Fatal(err)
	}
	e := newEnvIn(t, dir, server.Options{})
	r = e.req("GET", "/v1/collections/notes/records/inflight", tok, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"in":"flight"`) {
		t.Fatalf("the in-flight write was lost: %d %s", r.status, r.body)
	}
}

func TestLogsHoldNoTokensOrRecordData(t *testing.T) {
	e := newEnv(t)
	tok := e.tenantWithKey("acme", "pooled")
	const marker = "SECRET-MARKER-7f3a9"
	want(t, e.req("PUT", "/v1/collections/notes/records/n1", tok, `{"secret":"`+marker+`"}`), 201, "")
	want(t, e.req("POST", "/v1/collections/notes/records", tok, `{"secret":"`+marker+`"}`), 201, "")
	want(t, e.req("GET", "/v1/collections/notes/records?secret=eq."+marker, tok, nil), 200, "")
	want(t, e.req("GET", "/v1/collections/notes/records/n1", tok, nil), 200, "")
	want(t, e.req("PUT", "/v1/collections/notes/records/n2", tok, `{"secret":"`+marker+`"`), 400, "invalid_json")
	want(t, e.req("GET", "/v1/collections/notes/records/n1", tok+"x", nil), 401, "unauthenticated")
	want(t, e.req("GET", "/v1/admin/tenants", tok, nil), 403, "forbidden")

	logs := e.logs.String()
	for name, secret := range map[string]string{"operator token": e.op, "tenant key": tok, "record data": marker} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the %s", name)
		}
	}
	// The key's secret part alone must not appear either.
	if _, secret, ok := catalog.ParseToken(tok); !ok || strings.Contains(logs, secret) {
		t.Error("the log holds the tenant key's secret")
	}
	for _, wantLine := range []string{
		`"route":"PUT /v1/collections/{c}/records/{id}"`,
		`"tenant":"acme"`,
		`"status":201`,
		`"duration_ms":`,
		`"request_id":"`,
	} {
		if !strings.Contains(logs, wantLine) {
			t.Errorf("the log lacks %s", wantLine)
		}
	}
	if strings.Contains(logs, "/v1/collections/notes/records/n1") {
		t.Error("the log holds a raw path")
	}
}

func TestMetricsAndRequestIDs(t *testing.T) {
	e := newEnv(t)
	tok := e.tenantWithKey("acme", "pooled")
	want(t, e.req("PUT", "/v1/collections/notes/records/n1", tok, `{}`), 201, "")
	want(t, e.req("GET", "/v1/collections/notes/records/n1", tok, nil), 200, "")
	want(t, e.req("GET", "/v1/nothing", "", nil), 404, "route_not_found")

	r := e.req("GET", "/metrics", "", nil)
	want(t, r, 200, "")
	out := string(r.body)
	for _, w := range []string{
		`bulkhead_http_requests_total{code="201",route="PUT /v1/collections/{c}/records/{id}"} 1`,
		`bulkhead_http_requests_total{code="200",route="GET /v1/collections/{c}/records/{id}"} 1`,
		`bulkhead_http_requests_total{code="201",route="POST /v1/admin/tenants"} 1`,
		`bulkhead_http_requests_total{code="404",route="_unmatched"} 1`,
		`bulkhead_tenant_requests_total{class="2xx",tenant="acme"} 2`,
		`bulkhead_http_request_duration_seconds_bucket{route="GET /v1/collections/{c}/records/{id}",le="+Inf"} 1`,
		`process_`, `go_goroutines`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("metrics lack %s", w)
		}
	}

	r = e.req("GET", "/healthz", "", nil, "X-Request-ID", "client-id.42")
	if got := r.header.Get("X-Request-ID"); got == "client-id.42" || len(got) != 32 {
		t.Errorf("the request id is the client's, not the server's own: %q", got)
	}
	for _, bad := range []string{strings.Repeat("a", 65), "has space", "quote\"", "new\nline"} {
		req, _ := http.NewRequest("GET", e.http.URL+"/healthz", nil)
		req.Header["X-Request-Id"] = []string{bad}
		res, err := e.http.Client().Do(req)
		if err != nil {
			continue // the client refuses to send some of these at all
		}
		res.Body.Close()
		if got := res.Header.Get("X-Request-ID"); got == bad || len(got) != 32 {
			t.Errorf("an unsafe inbound request id %q gave %q", bad, got)
		}
	}
	a, b := e.req("GET", "/healthz", "", nil), e.req("GET", "/healthz", "", nil)
	if a.header.Get("X-Request-ID") == b.header.Get("X-Request-ID") {
		t.Error("two requests got the same id")
	}
}

func TestMetricsTenantLabelsAreBounded(t *testing.T) {
	e := newEnvIn(t, t.TempDir(), server.Options{MaxTenantLabels: 2})
	var toks []string
	for _, id := range []string{"t-one", "t-two", "t-three", "t-four"} {
		toks = append(toks, e.tenantWithKey(id, "pooled"))
	}
	for _, tok := range toks {
		want(t, e.req("GET", "/v1/collections", tok, nil), 200, "")
	}
	out := string(e.req("GET", "/metrics", "", nil).body)
	for _, w := range []string{`tenant="t-one"`, `tenant="t-two"`, `bulkhead_tenant_requests_total{class="2xx",tenant="_other"} 2`} {
		if !strings.Contains(out, w) {
			t.Errorf("metrics lack %s", w)
		}
	}
	for _, no := range []string{`tenant="t-three"`, `tenant="t-four"`} {
		if strings.Contains(out, no) {
			t.Errorf("metrics hold %s beyond the label budget", no)
		}
	}
}

func TestAPlacementRuleDecidesWhereNewTenantsGo(t *testing.T) {
	// Tenants whose id starts with "db-" get a database of their own; the
	// rest follow the default rule.
	rule := fleet.PlaceFunc(func(ctx context.Context, req fleet.PlacementRequest) (store.Placement, error) {
		if strings.HasPrefix(req.Tenant.String(), "db-") {
			return store.Placement{Mode: store.Database, Shard: req.Shards[0]}, nil
		}
		if strings.HasPrefix(req.Tenant.String(), "full-") {
			return store.Placement{}, errors.New("no room for more tenants")
		}
		return fleet.FewestTenants.Place(ctx, req)
	})
	e := newEnvIn(t, t.TempDir(), server.Options{Placement: rule})
	for id, mode := range map[string]string{"db-acme": "database", "globex": "pooled"} {
		r := e.req("POST", "/v1/admin/tenants", e.op, map[string]string{"id": id})
		want(t, r, 201, "")
		if got := r.json(t)["placement"].(map[string]any)["mode"]; got != mode {
			t.Errorf("%s placed in %v, want %s", id, got, mode)
		}
	}
	// A rule that fails creates nothing.
	want(t, e.req("POST", "/v1/admin/tenants", e.op, map[string]string{"id": "full-co"}), 500, "internal")
	want(t, e.req("GET", "/v1/admin/tenants/full-co", e.op, nil), 404, "tenant_not_found")
}
