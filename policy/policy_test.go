package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

var (
	acme   = tenant.MustParse("acme")
	globex = tenant.MustParse("globex")
)

func tenantKey(role string) Principal {
	return Principal{Kind: KindTenantKey, ID: "key-" + role, Tenant: acme, Role: role}
}

var (
	operator = Principal{Kind: KindOperator, ID: "op-1", Role: "operator"}
	support  = Principal{Kind: KindSupport, ID: "sup-1", Role: "support"}
)

func newEngine(t *testing.T, dir string) *Engine {
	t.Helper()
	e, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func decide(t *testing.T, e *Engine, r Request) Decision {
	t.Helper()
	d, err := e.Authorize(context.Background(), r)
	if err != nil {
		t.Fatalf("Authorize(%+v): %v", r, err)
	}
	return d
}

// The attack-test rows that concern authorization, against the default set.
func TestDefaultPolicyAttackRows(t *testing.T) {
	e := newEngine(t, "")
	tests := []struct {
		name  string
		req   Request
		allow bool
	}{
		{"a reader writing is denied", Request{Principal: tenantKey("reader"), Action: "record.write", Tenant: acme, Collection: "orders"}, false},
		{"a reader reading is allowed", Request{Principal: tenantKey("reader"), Action: "record.read", Tenant: acme, Collection: "orders"}, true},
		{"a writer managing keys is denied", Request{Principal: tenantKey("writer"), Action: "key.manage", Tenant: acme}, false},
		{"a tenant admin manages its own keys", Request{Principal: tenantKey("admin"), Action: "key.manage", Tenant: acme}, true},
		{"a tenant admin managing another tenant's keys is denied", Request{Principal: tenantKey("admin"), Action: "key.manage", Tenant: globex}, false},
		{"a tenant key reading another tenant is denied", Request{Principal: tenantKey("admin"), Action: "record.read", Tenant: globex, Collection: "orders"}, false},
		{"a tenant user reading another tenant is denied", Request{Principal: Principal{Kind: KindTenantUser, ID: "iss|sub", Tenant: acme, Role: "admin"}, Action: "record.read", Tenant: globex}, false},
		{"support without grant or act-as is denied", Request{Principal: support, Action: "record.read", Tenant: acme, Collection: "orders"}, false},
		{"support with act-as but no live grant is denied", Request{Principal: support, Action: "record.read", Tenant: acme, Collection: "orders", ActAs: true}, false},
		{"support with a grant but without act-as is denied", Request{Principal: support, Action: "record.read", Tenant: acme, Collection: "orders", GrantLive: true}, false},
		{"support with a live grant reads", Request{Principal: support, Action: "record.read", Tenant: acme, Collection: "orders", ActAs: true, GrantLive: true}, true},
		{"support with a live grant lists collections", Request{Principal: support, Action: "collection.list", Tenant: acme, ActAs: true, GrantLive: true}, true},
		{"support with a live grant writing is denied", Request{Principal: support, Action: "record.write", Tenant: acme, Collection: "orders", ActAs: true, GrantLive: true}, false},
		{"support on the control plane is denied", Request{Principal: support, Action: "tenant.list"}, false},
		{"an operator reading records is denied", Request{Principal: operator, Action: "record.read", Tenant: acme, Collection: "orders"}, false},
		{"an operator writing records is denied", Request{Principal: operator, Action: "record.write", Tenant: acme, Collection: "orders"}, false},
		{"an operator acting as a tenant with a grant is denied", Request{Principal: operator, Action: "record.read", Tenant: acme, ActAs: true, GrantLive: true}, false},
		{"an operator lists tenants", Request{Principal: operator, Action: "tenant.list"}, true},
		{"an operator creates a grant", Request{Principal: operator, Action: "grant.create", Tenant: acme}, true},
		{"a tenant key listing tenants is denied", Request{Principal: tenantKey("admin"), Action: "tenant.list"}, false},
		{"a tenant key creating keys on the control plane is denied", Request{Principal: tenantKey("admin"), Action: "key.create", Tenant: acme}, false},
		{"a tenant key sending act-as is denied", Request{Principal: tenantKey("admin"), Action: "record.read", Tenant: acme, ActAs: true, GrantLive: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := decide(t, e, tt.req); d.Allow != tt.allow {
				t.Errorf("Allow = %v, want %v (policies %v)", d.Allow, tt.allow, d.Policies)
			}
		})
	}
}

func TestDefaultCasesPass(t *testing.T) {
	rep, err := Check("")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cases) != len(DefaultCases()) || len(rep.Cases) < 40 {
		t.Fatalf("ran %d cases, want all %d embedded ones", len(rep.Cases), len(DefaultCases()))
	}
	for _, f := range rep.Failures() {
		t.Errorf("%s: expect %s, got %s (policies %v) %s", f.Name, f.Expect, f.Got, f.Policies, f.Error)
	}
}

func TestDecisionNamesDeterminingPolicies(t *testing.T) {
	e := newEngine(t, "")
	d := decide(t, e, Request{Principal: tenantKey("admin"), Action: "key.manage", Tenant: globex})
	if d.Allow || len(d.Policies) != 1 || d.Policies[0] != "tenant-isolation" {
		t.Errorf("cross-tenant deny = %+v, want deny by tenant-isolation", d)
	}
	d = decide(t, e, Request{Principal: tenantKey("reader"), Action: "record.read", Tenant: acme})
	if !d.Allow || len(d.Policies) != 1 || d.Policies[0] != "tenant-read" {
		t.Errorf("read = %+v, want allow by tenant-read", d)
	}
}

func TestInvalidRequestsAreErrors(t *testing.T) {
	e := newEngine(t, "")
	for name, r := range map[string]Request{
		"unknown action":                {Principal: tenantKey("admin"), Action: "record.nuke", Tenant: acme},
		"unknown kind":                  {Principal: Principal{Kind: "root", ID: "x"}, Action: "tenant.list"},
		"tenant key without tenant":     {Principal: Principal{Kind: KindTenantKey, ID: "k", Role: "admin"}, Action: "record.read", Tenant: acme},
		"tenant key with operator role": {Principal: Principal{Kind: KindTenantKey, ID: "k", Tenant: acme, Role: "operator"}, Action: "tenant.list"},
		"collection without tenant":     {Principal: operator, Action: "record.read", Collection: "orders"},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := e.Authorize(context.Background(), r)
			if !errors.Is(err, ErrInvalidRequest) || d.Allow {
				t.Errorf("got %+v, %v; want deny and ErrInvalidRequest", d, err)
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

const permitAll = `@id("allow-everything")
permit (principal, action, resource);
`

// A custom policy that permits everything cannot open another tenant, the
// data plane to operators, or writes to support: the default forbids win.
func TestForbidsBeatAPermissiveCustomPolicy(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "custom.cedar", permitAll)
	e := newEngine(t, dir)

	// The custom permit is in force: it allows what the default denied.
	if d := decide(t, e, Request{Principal: tenantKey("reader"), Action: "record.write", Tenant: acme}); !d.Allow {
		t.Fatalf("reader write with permit-all = deny, want allow (custom policy not loaded?)")
	}
	for name, r := range map[string]Request{
		"cross-tenant read":        {Principal: tenantKey("admin"), Action: "record.read", Tenant: globex, Collection: "orders"},
		"cross-tenant key.manage":  {Principal: tenantKey("admin"), Action: "key.manage", Tenant: globex},
		"tenant key control plane": {Principal: tenantKey("admin"), Action: "tenant.list"},
		"operator data plane":      {Principal: operator, Action: "record.read", Tenant: acme},
		"support write with grant": {Principal: support, Action: "record.write", Tenant: acme, ActAs: true, GrantLive: true},
		"support read no grant":    {Principal: support, Action: "record.read", Tenant: acme, ActAs: true},
	} {
		t.Run(name+" stays denied", func(t *testing.T) {
			d := decide(t, e, r)
			if d.Allow || len(d.Policies) == 0 {
				t.Errorf("got %+v, want a deny by a default forbid", d)
			}
		})
	}
}

func TestDirDefaultReplacesEmbedded(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, DefaultFile, `@id("only") permit (principal is Operator, action == Action::"tenant.list", resource);`)
	e := newEngine(t, dir)
	if got := e.Policies(); len(got) != 1 || got[0] != "only" {
		t.Fatalf("policies = %v, want only the replacement", got)
	}
	if d := decide(t, e, Request{Principal: tenantKey("reader"), Action: "record.read", Tenant: acme}); d.Allow {
		t.Error("embedded tenant-read still in force after replacing default.cedar")
	}
}

func TestParseErrorNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bad.cedar", "// comment\npermit (principal, action resource);\n")
	_, err := New(Options{Dir: dir})
	var pe *ParseError
	if !errors.As(err, &pe) || pe.File != "bad.cedar" || pe.Line != 2 {
		t.Fatalf("New error = %v, want a ParseError at bad.cedar:2", err)
	}
	if !strings.Contains(err.Error(), "bad.cedar:2:") {
		t.Errorf("message %q does not name bad.cedar:2", err)
	}
}

func TestDuplicatePolicyIDIsAnError(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "dup.cedar", `@id("tenant-read") permit (principal, action, resource);`)
	if _, err := New(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), `"tenant-read" is already used`) {
		t.Fatalf("New error = %v, want duplicate id error", err)
	}
}

func TestReloadKeepsTheLastGoodSet(t *testing.T) {
	dir := t.TempDir()
	e := newEngine(t, dir)
	w := Request{Principal: tenantKey("reader"), Action: "record.write", Tenant: acme}
	if decide(t, e, w).Allow {
		t.Fatal("reader write allowed by default")
	}

	writeFile(t, dir, "custom.cedar", permitAll)
	if err := e.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if !decide(t, e, w).Allow {
		t.Fatal("reader write denied after loading permit-all")
	}

	writeFile(t, dir, "custom.cedar", "permit (principal, action, resource")
	err := e.Reload()
	var pe *ParseError
	if !errors.As(err, &pe) || pe.File != "custom.cedar" {
		t.Fatalf("Reload of a broken file = %v, want a ParseError for custom.cedar", err)
	}
	if !decide(t, e, w).Allow {
		t.Error("a failed reload dropped the last good set")
	}
}

func TestWatchReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	e, err := New(Options{Dir: dir, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Watch(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	w := Request{Principal: tenantKey("reader"), Action: "record.write", Tenant: acme}
	waitFor := func(allow bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for decide(t, e, w).Allow != allow {
			if time.Now().After(deadline) {
				t.Fatalf("Watch did not reload to allow=%v", allow)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	writeFile(t, dir, "custom.cedar", permitAll)
	waitFor(true)

	// A broken file is ignored: the permit stays in force through several polls.
	writeFile(t, dir, "broken.cedar", "forbid (principal, action, resource")
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.mu.Lock() // Watch records the digest of a set that failed to parse
		failed := e.failed != [32]byte{}
		e.mu.Unlock()
		if failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Watch never tried the broken file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !decide(t, e, w).Allow {
		t.Fatal("a broken file replaced the last good set")
	}

	os.Remove(filepath.Join(dir, "broken.cedar"))
	os.Remove(filepath.Join(dir, "custom.cedar"))
	waitFor(false)
}

func TestCheckReportsFailingCases(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "custom.cedar", `@id("readers-export") permit (principal is TenantKey, action == Action::"record.export", resource) when { principal.role == "reader" };`)
	writeFile(t, dir, "custom.cases.json", `[
  {"name": "reader exports", "expect": "allow",
   "request": {"principal": {"kind": "tenant_key", "id": "k1", "tenant": "acme", "role": "reader"}, "action": "record.export", "tenant": "acme"}},
  {"name": "reader exports another tenant (wrongly expected)", "expect": "allow",
   "request": {"principal": {"kind": "tenant_key", "id": "k1", "tenant": "acme", "role": "reader"}, "action": "record.export", "tenant": "globex"}},
  {"name": "bad action", "expect": "deny",
   "request": {"principal": {"kind": "tenant_key", "id": "k1", "tenant": "acme", "role": "reader"}, "action": "record.nuke", "tenant": "acme"}}
]`)
	rep, err := Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cases) != 3 {
		t.Fatalf("ran %d cases, want 3", len(rep.Cases))
	}
	fails := rep.Failures()
	if rep.OK() || len(fails) != 2 {
		t.Fatalf("failures = %+v, want 2", fails)
	}
	if f := fails[0]; f.Got != "deny" || f.Policies[0] != "tenant-isolation" || f.File != "custom.cases.json" {
		t.Errorf("first failure = %+v, want deny by tenant-isolation", f)
	}
	if f := fails[1]; f.Got != "error" || !strings.Contains(f.Error, "unknown action") {
		t.Errorf("second failure = %+v, want an unknown-action error", f)
	}
}

func TestCheckRejectsBadCaseFiles(t *testing.T) {
	for name, text := range map[string]string{
		"syntax":        "[\n  {\"name\": \"x\",,}\n]",
		"unknown field": `[{"name": "x", "expect": "deny", "reqest": {}}]`,
		"bad expect":    `[{"name": "x", "expect": "maybe", "request": {"action": "record.read"}}]`,
		"no name":       `[{"expect": "deny", "request": {"action": "record.read"}}]`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "x.cases.json", text)
			_, err := Check(dir)
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "x.cases.json" {
				t.Errorf("Check = %v, want a ParseError naming x.cases.json", err)
			}
		})
	}
}

func TestConcurrentAuthorizeDuringReload(t *testing.T) {
	dir := t.TempDir()
	e := newEngine(t, dir)
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for {
			select {
			case <-stop:
				return
			default:
			}
			d, err := e.Authorize(context.Background(), Request{Principal: tenantKey("admin"), Action: "record.read", Tenant: globex})
			if err != nil || d.Allow {
				errc <- errors.New("cross-tenant read allowed or failed during reload")
				return
			}
		}
	}()
	for i := range 50 {
		if i%2 == 0 {
			writeFile(t, dir, "custom.cedar", permitAll)
		} else {
			os.Remove(filepath.Join(dir, "custom.cedar"))
		}
		if err := e.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func BenchmarkAuthorize(b *testing.B) {
	e, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		req  Request
	}{
		{"allow/reader-read", Request{Principal: tenantKey("reader"), Action: "record.read", Tenant: acme, Collection: "orders"}},
		{"deny/cross-tenant", Request{Principal: tenantKey("admin"), Action: "record.read", Tenant: globex, Collection: "orders"}},
		{"allow/support-grant", Request{Principal: support, Action: "record.read", Tenant: acme, Collection: "orders", ActAs: true, GrantLive: true}},
		{"allow/operator", Request{Principal: operator, Action: "tenant.list"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Authorize(ctx, bc.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The entity caches are bounded; decisions stay right across a reset.
func TestEntityCacheOverflowKeepsDecisionsRight(t *testing.T) {
	e := newEngine(t, "")
	for i := range maxCached + 10 {
		coll := "c" + strconv.Itoa(i)
		if !decide(t, e, Request{Principal: tenantKey("reader"), Action: "record.read", Tenant: acme, Collection: coll}).Allow {
			t.Fatalf("own collection %s denied", coll)
		}
		if decide(t, e, Request{Principal: tenantKey("reader"), Action: "record.read", Tenant: globex, Collection: coll}).Allow {
			t.Fatalf("other tenant's collection %s allowed", coll)
		}
	}
	if n := len(e.ents.collections.m); n > maxCached {
		t.Errorf("collection cache holds %d entries, want at most %d", n, maxCached)
	}
}
