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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/admission"
	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/problem"
	"github.com/bulkhead-dev/bulkhead/ratelimit"
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

func TestTenantCredentialActsOnItsOwnTenantOnly(t *testing.T) {
	f := newFixture(t, nil)
	got := f.passed("GET", "/v1/collections/notes/records/n1", acmeWriter)
	if got.Tenant != "acme" || got.Principal.ID != "k-acme-w" || got.Principal.Tenant != acme {
		t.Fatalf("the handler saw %+v", got)
	}

	t.Run("a forged act-as header is refused, whatever it names", func(t *testing.T) {
		for _, v := range []string{"beta", "acme", "", "not a tenant", "beta, acme"} {
			f.denied(403, "forbidden", "GET", "/v1/collections/notes/records/n1", acmeWriter, ingress.ActAsHeader, v)
			f.audited("acme", "tenant_key:k-acme-w@acme", "record.read", "deny:forbidden")
		}
		// The header as a client may spell it: net/http folds the case.
		f.denied(403, "forbidden", "GET", "/v1/collections/notes/records/n1", acmeWriter, "bulkhead-act-as-tenant", "beta")
		f.denied(403, "forbidden", "PUT", "/v1/collections/notes/records/n1", acmeWriter,
			ingress.ActAsHeader, "beta", ingress.ActAsHeader, "acme")
		e := f.audited("acme", "tenant_key:k-acme-w@acme", "record.write", "deny:forbidden")
		if e.Resource != "tenant/acme/collections/notes" {
			t.Errorf("resource %q", e.Resource)
		}
		if es := f.entries("beta"); len(es) != 0 {
			t.Errorf("beta's chain holds acme's attempts: %+v", es)
		}
	})

	t.Run("nothing else in the request names the tenant", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			hdr  []string
		}{
			{"/v1/collections/notes/records/n1?tenant=beta&" + ingress.ActAsHeader + "=beta", nil},
			{"/v1/collections/notes/records/n1", []string{"X-Tenant-Id", "beta", "Bulkhead-Tenant", "beta", "Tenant", "beta"}},
			{"/v1/collections/notes/records/n1", []string{"Bulkhead_Act_As_Tenant", "beta", "Bulkhead-Act-As-Tenants", "beta"}},
			{"/v1/tenants/beta/collections/notes", nil},
			{"/v1/tenants/beta/collections/notes?id=beta&tenant=beta", []string{"Forwarded", "for=1.2.3.4;host=beta.example"}},
		} {
			got := f.passed("GET", tc.path, acmeReader, tc.hdr...)
			if got.Tenant != "acme" || got.Principal.Tenant != acme || got.Principal.ID != "k-acme-r" {
				t.Errorf("GET %s %q: the handler saw %+v", tc.path, tc.hdr, got)
			}
		}
	})

	t.Run("the policy holds each tenant to its role", func(t *testing.T) {
		f.denied(403, "forbidden", "PUT", "/v1/collections/notes/records/n1", acmeReader)
		f.audited("acme", "tenant_key:k-acme-r@acme", "record.write", "deny:forbidden")
		if got := f.passed("PUT", "/v1/collections/notes/records/n1", betaWriter); got.Tenant != "beta" {
			t.Errorf("beta's writer saw %+v", got)
		}
	})
}

func TestPlanesAreKeptApart(t *testing.T) {
	f := newFixture(t, nil)
	f.denied(403, "forbidden", "GET", "/v1/collections/notes/records/n1", operator)
	f.audited(audit.ControlChain, "operator:operator", "record.read", "deny:forbidden")

	for _, tok := range []string{acmeWriter, agentSam} {
		f.denied(403, "forbidden", "GET", "/v1/admin/tenants/acme", tok)
		f.denied(403, "forbidden", "POST", "/v1/admin/tenants/beta/suspend", tok)
	}
	e := f.audited(audit.ControlChain, "support:sam", "tenant.suspend", "deny:forbidden")
	if e.Resource != "tenant/beta" {
		t.Errorf("resource %q", e.Resource)
	}
	if es := f.entries("acme"); len(es) != 0 {
		t.Errorf("control-plane denials on acme's chain: %+v", es)
	}

	// The operator passes on the control plane; a change is audited, a read is not.
	if got := f.passed("GET", "/v1/admin/tenants/acme", operator); got.Principal.Kind != ingress.KindOperator || got.Tenant != "" {
		t.Errorf("the control handler saw %+v", got)
	}
	n := len(f.entries(audit.ControlChain))
	f.passed("POST", "/v1/admin/tenants/beta/suspend", operator, ingress.ActAsHeader, "acme")
	if got := f.last(); got.Tenant != "" {
		t.Errorf("an act-as header put tenant %q in a control-plane context", got.Tenant)
	}
	f.audited(audit.ControlChain, "operator:operator", "tenant.suspend", "allow")
	if m := len(f.entries(audit.ControlChain)); m != n+1 {
		t.Errorf("%d control entries after a read and a change, want %d", m, n+1)
	}
}

func TestSuspendedTenant(t *testing.T) {
	f := newFixture(t, nil)
	r := f.denied(403, "tenant_suspended", "GET", "/v1/collections/notes/records/n1", suspended)
	if r.header.Get("WWW-Authenticate") != "" {
		t.Errorf("a suspended tenant is told to authenticate: %q", r.header.Get("WWW-Authenticate"))
	}
	f.audited(audit.ControlChain, "anonymous", "record.read", "deny:tenant_suspended")
	// On the control plane it is a tenant credential like any other.
	f.denied(403, "forbidden", "GET", "/v1/admin/tenants/acme", suspended)
	f.audited(audit.ControlChain, "anonymous", "tenant.read", "deny:forbidden")
}

func TestAuthenticatorFailureIsInternal(t *testing.T) {
	f := newFixture(t, nil)
	for _, path := range []string{"/v1/collections/notes/records/n1", "/v1/admin/tenants/acme"} {
		r := f.denied(500, "internal", "GET", path, broken)
		if strings.Contains(r.body, "refused") || strings.Contains(r.body, "10.0.0.7") {
			t.Errorf("the failure's text reached the client: %q", r.body)
		}
		if r.header.Get("WWW-Authenticate") != "" {
			t.Errorf("an internal failure asks for a credential: %q", r.header.Get("WWW-Authenticate"))
		}
	}
	// Not a decision: nothing audited.
	if es := f.entries(audit.ControlChain); len(es) != 0 {
		t.Errorf("an internal failure was audited as %+v", es)
	}

	t.Run("a tenant principal without a tenant is a failure, not a pass", func(t *testing.T) {
		for name, pol := range map[string]func(*ingress.Config){
			"default policy": nil,
			"no policy":      func(c *ingress.Config) { c.Policy = nil },
		} {
			t.Run(name, func(t *testing.T) {
				f := newFixture(t, pol)
				f.denied(500, "internal", "GET", "/v1/collections/notes/records/n1", noTenant)
				f.denied(500, "internal", "PUT", "/v1/collections/notes/records/n1", noTenant)
			})
		}
	})

	t.Run("a grant store failure is internal", func(t *testing.T) {
		f := newFixture(t, func(c *ingress.Config) {
			c.Grants = grantsFunc(func(context.Context, string, tenant.ID) (bool, error) {
				return false, errors.New("grants: database is locked")
			})
		})
		r := f.denied(500, "internal", "GET", "/v1/collections/notes/records/n1", agentSam, ingress.ActAsHeader, "acme")
		if strings.Contains(r.body, "locked") {
			t.Errorf("the failure's text reached the client: %q", r.body)
		}
	})
}

func TestSupportAgent(t *testing.T) {
	var asked []string
	var mu sync.Mutex
	f := newFixture(t, func(c *ingress.Config) {
		c.Grants = grantsFunc(func(ctx context.Context, agentID string, id tenant.ID) (bool, error) {
			mu.Lock()
			asked = append(asked, agentID+"→"+id.String())
			mu.Unlock()
			return samMayRead(ctx, agentID, id)
		})
	})
	read := "/v1/collections/notes/records/n1"

	t.Run("names exactly one valid tenant", func(t *testing.T) {
		f.denied(403, "forbidden", "GET", read, agentSam)
		f.denied(403, "forbidden", "GET", read, agentSam, ingress.ActAsHeader, "acme", ingress.ActAsHeader, "acme")
		f.denied(403, "forbidden", "GET", read, agentSam, ingress.ActAsHeader, "ACME")
		f.denied(403, "forbidden", "GET", read, agentSam, ingress.ActAsHeader, "_control")
		f.audited(audit.ControlChain, "support:sam", "record.read", "deny:forbidden")
	})

	t.Run("without a grant is refused", func(t *testing.T) {
		f.denied(403, "forbidden", "GET", read, agentSam, ingress.ActAsHeader, "beta")
		e := f.audited(audit.ControlChain, "support:sam", "record.read", "deny:forbidden")
		if e.Resource != "tenant/beta/collections/notes" {
			t.Errorf("resource %q", e.Resource)
		}
	})

	t.Run("with a live grant reads as the tenant", func(t *testing.T) {
		got := f.passed("GET", read, agentSam, ingress.ActAsHeader, "acme")
		if got.Tenant != "acme" || got.Principal.Kind != ingress.KindSupport || got.Principal.ID != "sam" || !got.Principal.Tenant.IsZero() {
			t.Errorf("the handler saw %+v", got)
		}
		e := f.audited("acme", "support:sam", "record.read", "allow")
		if e.Resource != "tenant/acme/collections/notes" {
			t.Errorf("resource %q", e.Resource)
		}
		f.passed("GET", "/v1/tenants/beta/collections/notes", agentSam, ingress.ActAsHeader, "acme")
		f.audited("acme", "support:sam", "collection.list", "allow")
		// A read the handler fails is audited with its status.
		if r := f.do("GET", "/v1/collections/missing/records/n1", agentSam, ingress.ActAsHeader, "acme"); r.status != 404 {
			t.Fatalf("status %d", r.status)
		}
		f.audited("acme", "support:sam", "record.read", "allow:404")
	})

	t.Run("writes are refused even with a grant", func(t *testing.T) {
		f.denied(403, "forbidden", "PUT", read, agentSam, ingress.ActAsHeader, "acme")
		f.audited(audit.ControlChain, "support:sam", "record.write", "deny:forbidden")
	})

	mu.Lock()
	defer mu.Unlock()
	want := "sam→beta sam→acme sam→acme sam→acme sam→acme"
	if got := strings.Join(asked, " "); got != want {
		t.Errorf("grants asked %s, want %s", got, want)
	}
}

// A gate without a Policy uses Bulkhead's embedded default policy: roles
// count, and nothing the policy does not name is allowed.
func TestNilPolicyIsTheDefaultPolicy(t *testing.T) {
	f := newFixture(t, func(c *ingress.Config) { c.Policy = nil })
	if got := f.passed("PUT", "/v1/collections/notes/records/n1", acmeWriter); got.Tenant != "acme" {
		t.Errorf("the handler saw %+v", got)
	}
	if got := f.passed("GET", "/v1/collections/notes/records/n1", acmeReader); got.Tenant != "acme" {
		t.Errorf("the handler saw %+v", got)
	}
	f.denied(403, "forbidden", "PUT", "/v1/collections/notes/records/n1", acmeReader) // a reader cannot write
	f.audited("acme", "tenant_key:k-acme-r@acme", "record.write", "deny:forbidden")
	f.denied(403, "forbidden", "GET", "/v1/collections/notes/records/n1", acmeReader, ingress.ActAsHeader, "beta")
	f.denied(403, "forbidden", "GET", "/v1/collections/notes/records/n1", operator)

	// An action of the team's own that no policy names is denied.
	g, err := ingress.New(ingress.Config{Authenticator: ingress.AuthenticatorFunc(
		func(context.Context, string) (ingress.Principal, error) {
			return ingress.Principal{Kind: ingress.KindTenantKey, ID: "k", Tenant: acme, Role: "admin"}, nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Enter(context.Background(), ingress.Request{Token: "t", Action: "invoice.approve"}); err == nil {
		t.Error("an action the default policy does not name was allowed")
	}
}

func TestChain(t *testing.T) {
	ctx := context.Background()
	p := func(id string) ingress.Principal {
		return ingress.Principal{Kind: ingress.KindTenantKey, ID: id, Tenant: acme}
	}
	answer := func(pr ingress.Principal, err error) ingress.Authenticator {
		return ingress.AuthenticatorFunc(func(context.Context, string) (ingress.Principal, error) { return pr, err })
	}
	var asked atomic.Int64
	never := ingress.AuthenticatorFunc(func(context.Context, string) (ingress.Principal, error) {
		asked.Add(1)
		return p("never"), nil
	})
	internal := errors.New("store down")
	for _, tc := range []struct {
		name  string
		chain ingress.Authenticator
		want  string
		err   error
	}{
		{"an empty chain claims nothing", ingress.Chain(), "", ingress.ErrUnauthenticated},
		{"not mine falls through", ingress.Chain(answer(p("x"), ingress.ErrNotMine), answer(p("b"), nil)), "b", nil},
		{"a wrapped not mine falls through", ingress.Chain(answer(p("x"), fmt.Errorf("bk_: %w", ingress.ErrNotMine)), answer(p("b"), nil)), "b", nil},
		{"nobody claims it", ingress.Chain(answer(p("x"), ingress.ErrNotMine), answer(p("y"), ingress.ErrNotMine)), "", ingress.ErrUnauthenticated},
		{"the first to claim decides: invalid", ingress.Chain(answer(p("x"), ingress.ErrUnauthenticated), never), "", ingress.ErrUnauthenticated},
		{"the first to claim decides: valid", ingress.Chain(answer(p("a"), nil), never), "a", nil},
		{"the first to claim decides: suspended", ingress.Chain(answer(p("x"), ingress.ErrSuspended), never), "", ingress.ErrSuspended},
		{"a failure stops the chain", ingress.Chain(answer(p("x"), internal), never), "", internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.chain.Authenticate(ctx, "tok")
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err == nil && got.ID != tc.want {
				t.Fatalf("principal %+v, want %s", got, tc.want)
			}
		})
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the chain asked on after a decision %d times", n)
	}

	t.Run("the operator token", func(t *testing.T) {
		op := ingress.OperatorToken(sha256.Sum256([]byte(operator)))
		if got, err := op.Authenticate(ctx, operator); err != nil || got.Kind != ingress.KindOperator {
			t.Fatalf("%+v %v", got, err)
		}
		for _, tok := range []string{"", operator + "x", operator[:len(operator)-1], strings.ToUpper(operator)} {
			if _, err := op.Authenticate(ctx, tok); !errors.Is(err, ingress.ErrNotMine) {
				t.Errorf("%q: %v, want ErrNotMine", tok, err)
			}
		}
	})

	t.Run("through the gate, a token nobody claims is 401", func(t *testing.T) {
		f := newFixture(t, func(c *ingress.Config) {
			c.Authenticator = ingress.Chain(answer(p("x"), ingress.ErrNotMine), answer(p("y"), ingress.ErrNotMine))
		})
		r := f.denied(401, "unauthenticated", "GET", "/v1/collections/notes/records/n1", "whatever")
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="bulkhead", error="invalid_token"` {
			t.Errorf("WWW-Authenticate %q", got)
		}
	})
}

func TestRateLimit(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var clock sync.Mutex
	tick := func(d time.Duration) { clock.Lock(); now = now.Add(d); clock.Unlock() }
	var throttled []string
	f := newFixture(t, func(c *ingress.Config) {
		c.Limiter = ratelimit.NewLocal(ratelimit.LocalOptions{Now: func() time.Time { clock.Lock(); defer clock.Unlock(); return now }})
		c.Limits = fixedLimits{RequestsPerSecond: 0.5, Burst: 2}
		c.OnThrottle = func(id tenant.ID, reason string) { throttled = append(throttled, id.String()+":"+reason) }
	})
	read := "/v1/collections/notes/records/n1"
	for i, remaining := range []string{"1", "0"} {
		r := f.do("GET", read, acmeReader)
		if r.status != 200 || r.header.Get("RateLimit-Limit") != "2" || r.header.Get("RateLimit-Remaining") != remaining {
			t.Fatalf("request %d: %d %v", i, r.status, r.header)
		}
	}
	r := f.denied(429, "rate_limited", "GET", read, acmeReader)
	if got := r.header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2 (one token at 0.5/s)", got)
	}
	if r.header.Get("RateLimit-Limit") != "2" || r.header.Get("RateLimit-Remaining") != "0" || r.header.Get("RateLimit-Reset") != "4" {
		t.Errorf("RateLimit headers %v", r.header)
	}
	if len(throttled) != 1 || throttled[0] != "acme:rate_limited" {
		t.Errorf("OnThrottle saw %q", throttled)
	}
	// Throttling is not a denial of access: not audited.
	if es := f.entries("acme"); len(es) != 0 {
		t.Errorf("a throttled request was audited: %+v", es)
	}
	// Another tenant's budget is its own; a support agent's reads do not spend the tenant's.
	f.passed("GET", read, betaWriter)
	f.passed("GET", read, agentSam, ingress.ActAsHeader, "acme")
	f.denied(429, "rate_limited", "GET", read, acmeWriter) // the same tenant under another key
	tick(2 * time.Second)
	f.passed("GET", read, acmeReader)
}

func TestAdmission(t *testing.T) {
	ctrl := admission.New(admission.Options{
		Limits:  fixedLimits{MaxConcurrent: 1, QueueDepth: 1},
		MaxWait: 30 * time.Second,
	})
	f := newFixture(t, func(c *ingress.Config) { c.Admission = ctrl })
	read := "/v1/collections/notes/records/n1"
	// Served requests give their slot back.
	for range 3 {
		f.passed("GET", read, acmeReader)
	}

	// acme's one slot is taken and its one queue place too.
	ctx := context.Background()
	release, err := ctrl.Acquire(ctx, acme)
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, stopWaiting := context.WithCancel(ctx)
	waited := make(chan error, 1)
	go func() {
		rel, err := ctrl.Acquire(waitCtx, acme)
		if err == nil {
			rel()
		}
		waited <- err
	}()
	for ctrl.Queued(acme) != 1 {
		time.Sleep(time.Millisecond)
	}
	r := f.denied(429, "tenant_overloaded", "GET", read, acmeReader)
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	f.passed("GET", read, betaWriter) // another tenant is not held up
	stopWaiting()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter: %v", err)
	}
	release()
	f.passed("GET", read, acmeReader)

	t.Run("a handler that panics gives its slot back", func(t *testing.T) {
		f.panicOn.Store("boom")
		req, _ := http.NewRequest("GET", f.url+"/v1/collections/boom/records/n1", nil)
		req.Header.Set("Authorization", "Bearer "+acmeReader)
		if resp, err := http.DefaultClient.Do(req); err == nil { // http.ErrAbortHandler: the server drops the connection
			resp.Body.Close()
			t.Fatalf("a panicking handler answered %d", resp.StatusCode)
		}
		f.passed("GET", read, acmeReader)
	})

	t.Run("an audited request whose handler panics is recorded as such", func(t *testing.T) {
		f.panicOn.Store("boom")
		req, _ := http.NewRequest("GET", f.url+"/v1/collections/boom/records/n1", nil)
		req.Header.Set("Authorization", "Bearer "+agentSam)
		req.Header.Set(ingress.ActAsHeader, "acme")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("a panicking handler answered %d", resp.StatusCode)
		}
		f.audited("acme", "support:sam", "record.read", "allow:panic")
	})
}

func TestAuditNamesNoControlCharacters(t *testing.T) {
	f := newFixture(t, func(c *ingress.Config) { c.AlwaysAudit = map[string]bool{"record.read": true} })
	// A denial (forged act-as) and an audited pass of a tenant user whose
	// issuer and subject hold U+0085, U+009B and ESC.
	f.denied(403, "forbidden", "GET", "/v1/collections/notes/records/n1", controlChars, ingress.ActAsHeader, "beta")
	f.passed("GET", "/v1/collections/notes/records/n1", controlChars)
	es := f.entries("acme")
	if len(es) != 2 {
		t.Fatalf("acme's chain: %+v, want the denial and the read", es)
	}
	for i, decision := range []string{"deny:forbidden", "allow"} {
		e := es[i]
		if e.Decision != decision || e.Principal != "tenant_user:https://idp?.example|eve?2J?[31m@acme" {
			t.Errorf("entry %+v, want %s", e, decision)
		}
		for _, r := range e.Principal {
			if r < 0x20 || r >= 0x7f && r <= 0x9f {
				t.Errorf("principal %q holds %U", e.Principal, r)
			}
		}
	}
	if rep, err := f.audit.Verify(context.Background()); err != nil || !rep.OK() {
		t.Errorf("verify: %+v %v", rep, err)
	}
}

// TestDenialsAreAuditedWhateverThePath: what a request puts in the audit
// log (the collection of its path) must not keep its denial out of it.
func TestDenialsAreAuditedWhateverThePath(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []string{
		"a%0Ab", "a%C2%85b", "a%C2%9Bb", "a%1B%5B2Jb", "a%FFb", "a%00b",
		strings.Repeat("x", 600), strings.Repeat("%C3%A9", 400),
	} {
		path := "/v1/collections/" + c + "/records/n1"
		before := len(f.entries("acme"))
		f.denied(403, "forbidden", "GET", path, acmeWriter, ingress.ActAsHeader, "beta")
		es := f.entries("acme")
		if len(es) != before+1 {
			t.Errorf("collection %.40q: the denial was not audited", c)
			continue
		}
		e := es[len(es)-1]
		if !strings.HasPrefix(e.Resource, "tenant/acme/collections/") || e.Decision != "deny:forbidden" {
			t.Errorf("collection %.40q: entry %+v", c, e)
		}
		before = len(f.entries(audit.ControlChain))
		f.denied(403, "forbidden", "GET", path, agentSam, ingress.ActAsHeader, "beta")
		if n := len(f.entries(audit.ControlChain)); n != before+1 {
			t.Errorf("collection %.40q: the support agent's denial was not audited", c)
		}
	}
	if rep, err := f.audit.Verify(context.Background()); err != nil || !rep.OK() {
		t.Errorf("verify: %+v %v", rep, err)
	}
}

func TestNewRefusesAnIncompleteConfig(t *testing.T) {
	for name, cfg := range map[string]ingress.Config{
		"no authenticator":        {},
		"a limiter but no limits": {Authenticator: teamAuth(), Limiter: ratelimit.NewLocal(ratelimit.LocalOptions{})},
		"limits but no limiter":   {Authenticator: teamAuth(), Limits: fixedLimits{}},
	} {
		if _, err := ingress.New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}
