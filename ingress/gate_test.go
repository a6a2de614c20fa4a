package ingress_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/admission"
	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ratelimit"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

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
		e := f.audited("beta", "support:sam", "record.read", "deny:forbidden") // the tenant's chain
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
		f.audited("acme", "support:sam", "record.write", "deny:forbidden")
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
		before = len(f.entries("beta"))
		f.denied(403, "forbidden", "GET", path, agentSam, ingress.ActAsHeader, "beta")
		if n := len(f.entries("beta")); n != before+1 {
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
