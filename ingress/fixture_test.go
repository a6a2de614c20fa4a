package ingress_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// The team's own credentials, as its identity service knows them.
const (
	acmeWriter   = "tok-acme-writer"
	acmeReader   = "tok-acme-reader"
	betaWriter   = "tok-beta-writer"
	agentSam     = "tok-agent-sam"
	suspended    = "tok-suspended"
	broken       = "tok-broken"      // the identity service fails
	noTenant     = "tok-no-tenant"   // a buggy identity service: a tenant key without a tenant
	controlChars = "tok-ctl-chars"   // a tenant user whose issuer and subject hold C1 controls
	operator     = "tok-operator-42" // the operator token
	analystAnn   = "tok-analyst-ann" // an analyst
)

var (
	acme = tenant.MustParse("acme")
	beta = tenant.MustParse("beta")
)

// teamAuth is a team's own Authenticator (behind the operator token): it
// knows the tokens above and nothing else.
func teamAuth() ingress.Authenticator {
	known := map[string]ingress.Principal{
		acmeWriter:   {Kind: ingress.KindTenantKey, ID: "k-acme-w", Tenant: acme, Role: "writer"},
		acmeReader:   {Kind: ingress.KindTenantKey, ID: "k-acme-r", Tenant: acme, Role: "reader"},
		betaWriter:   {Kind: ingress.KindTenantKey, ID: "k-beta-w", Tenant: beta, Role: "writer"},
		agentSam:     {Kind: ingress.KindSupport, ID: "sam", Role: "support"},
		analystAnn:   {Kind: ingress.KindAnalyst, ID: "ann", Role: "analyst"},
		noTenant:     {Kind: ingress.KindTenantKey, ID: "k-lost", Role: "writer"},
		controlChars: {Kind: ingress.KindTenantUser, ID: "https://idp\u0085.example|eve\u009b2J\x1b[31m", Tenant: acme, Role: "reader"},
	}
	team := ingress.AuthenticatorFunc(func(_ context.Context, tok string) (ingress.Principal, error) {
		switch tok {
		case suspended:
			return ingress.Principal{}, fmt.Errorf("key k-old: %w", ingress.ErrSuspended)
		case broken:
			return ingress.Principal{}, errors.New("identity service: dial tcp 10.0.0.7:443: connection refused")
		}
		if p, ok := known[tok]; ok {
			return p, nil
		}
		return ingress.Principal{}, fmt.Errorf("unknown token: %w", ingress.ErrUnauthenticated)
	})
	return ingress.Chain(ingress.OperatorToken(sha256.Sum256([]byte(operator))), team)
}

// grantsFunc is a Grants implemented by a function.
type grantsFunc func(ctx context.Context, agentID string, id tenant.ID) (bool, error)

func (f grantsFunc) LiveGrant(ctx context.Context, agentID string, id tenant.ID) (bool, error) {
	return f(ctx, agentID, id)
}

// samMayRead is a grant store where agent sam holds a live grant for acme
// only.
var samMayRead = grantsFunc(func(_ context.Context, agentID string, id tenant.ID) (bool, error) {
	return agentID == "sam" && id == acme, nil
})

// fixedLimits gives every tenant the same limits.
type fixedLimits limits.Limits

func (l fixedLimits) For(context.Context, tenant.ID) (limits.Limits, error) {
	return limits.Limits(l), nil
}

// seen is what a handler saw of a request the gate let in.
type seen struct {
	Tenant    string
	Principal ingress.Principal
}

// fixture is a gate in front of a team's routes on a real HTTP server on
// loopback, with a real audit log and the real policy engine.
type fixture struct {
	t     *testing.T
	gate  *ingress.Gate
	audit *audit.Log
	url   string

	mu   sync.Mutex
	seen []seen // guarded by mu
	// panicOn makes the handler panic for requests of this collection.
	panicOn atomic.Value // string
}

// newFixture builds the gate from the default configuration (the team's
// authenticator, the default policy, sam's grant, the audit log), edited
// by edit, and serves:
//
//	GET  /v1/collections/{c}/records/{id}     record.read
//	PUT  /v1/collections/{c}/records/{id}     record.write
//	GET  /v1/tenants/{tenant}/collections/{c} collection.list (a path that names a tenant)
//	GET  /v1/admin/tenants/{id}               tenant.read (control plane)
//	POST /v1/admin/tenants/{id}/suspend       tenant.suspend (control plane)
//	GET  /v1/analytics/query                  analytics.query (analytics plane)
func newFixture(t *testing.T, edit func(*ingress.Config)) *fixture {
	t.Helper()
	log, err := audit.OpenSQLite(filepath.Join(t.TempDir(), audit.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	engine, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ingress.Config{
		Authenticator: teamAuth(),
		Policy:        engine,
		Grants:        samMayRead,
		Audit:         log,
		Logger:        slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&cfg)
	}
	g, err := ingress.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, gate: g, audit: log}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := ingress.FromContext(r.Context())
		id, _ := tenant.FromContext(r.Context())
		f.mu.Lock()
		f.seen = append(f.seen, seen{Tenant: id.String(), Principal: p})
		f.mu.Unlock()
		if c := r.PathValue("c"); c != "" && c == f.panicOn.Load() {
			panic(http.ErrAbortHandler)
		}
		if res := r.URL.Query().Get("resource"); res != "" {
			ingress.SetResource(r.Context(), res)
		}
		if r.PathValue("c") == "missing" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, id.String())
	})
	mux := http.NewServeMux()
	mux.Handle("GET /v1/collections/{c}/records/{id}", g.Data("record.read", h))
	mux.Handle("PUT /v1/collections/{c}/records/{id}", g.Middleware("record.write")(h))
	mux.Handle("GET /v1/tenants/{tenant}/collections/{c}", g.Data("collection.list", h))
	mux.Handle("GET /v1/admin/tenants/{id}", g.Control("tenant.read", h))
	mux.Handle("POST /v1/admin/tenants/{id}/suspend", g.Control("tenant.suspend", h))
	mux.Handle("GET /v1/analytics/query", g.Analytics("analytics.query", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// response is an answer, read whole.
type response struct {
	status int
	header http.Header
	body   string
	doc    problem.Document // for problem+json answers
}

// do sends a request with token (none if "") and the extra headers hdr
// (name, value, name, value, ...; names sent as written).
func (f *fixture) do(method, path, token string, hdr ...string) response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.url+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header[hdr[i]] = append(req.Header[hdr[i]], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: string(body)}
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		if err := json.Unmarshal(body, &r.doc); err != nil {
			f.t.Fatalf("problem document %q: %v", body, err)
		}
	}
	return r
}

// runs is how many requests reached the handler so far.
func (f *fixture) runs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

// last is what the handler saw of the latest request it served.
func (f *fixture) last() seen {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.seen) == 0 {
		f.t.Fatal("the handler never ran")
	}
	return f.seen[len(f.seen)-1]
}

// denied sends a request that the gate must refuse with status and code,
// without running the handler, and returns the answer.
func (f *fixture) denied(status int, code, method, path, token string, hdr ...string) response {
	f.t.Helper()
	before := f.runs()
	r := f.do(method, path, token, hdr...)
	if r.status != status || r.doc.Code != code {
		f.t.Errorf("%s %s with %q %q: %d %q, want %d %s", method, path, token, hdr, r.status, r.body, status, code)
	}
	if r.header.Get("Content-Type") != "application/problem+json" || r.doc.Status != r.status {
		f.t.Errorf("%s %s: not a problem document: %v %q", method, path, r.header, r.body)
	}
	if n := f.runs(); n != before {
		f.t.Errorf("%s %s with %q %q: the handler ran", method, path, token, hdr)
	}
	return r
}

// passed sends a request that the gate must let through to the handler
// and returns what the handler saw.
func (f *fixture) passed(method, path, token string, hdr ...string) seen {
	f.t.Helper()
	before := f.runs()
	r := f.do(method, path, token, hdr...)
	if r.status != http.StatusOK {
		f.t.Fatalf("%s %s with %q %q: %d %q, want 200", method, path, token, hdr, r.status, r.body)
	}
	if f.runs() != before+1 {
		f.t.Fatalf("%s %s: the handler ran %d times", method, path, f.runs()-before)
	}
	return f.last()
}

// entries returns chain's audit entries.
func (f *fixture) entries(chain string) []audit.Entry {
	f.t.Helper()
	es, err := f.audit.List(context.Background(), chain, 0, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	return es
}

// audited fails the test unless the latest entry of chain records
// decision for action, by principal, and returns it.
func (f *fixture) audited(chain, principal, action, decision string) audit.Entry {
	f.t.Helper()
	es := f.entries(chain)
	if len(es) == 0 {
		f.t.Fatalf("nothing audited on chain %s; want %s %s %s", chain, principal, action, decision)
		return audit.Entry{}
	}
	e := es[len(es)-1]
	if e.Principal != principal || e.Action != action || e.Decision != decision {
		f.t.Errorf("latest entry of chain %s: %s %s %s on %q, want %s %s %s", chain,
			e.Principal, e.Action, e.Decision, e.Resource, principal, action, decision)
	}
	return e
}
