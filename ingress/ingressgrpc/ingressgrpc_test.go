package ingressgrpc_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-dev/bulkhead/admission"
	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ingress/ingressgrpc"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

const (
	acmeReader = "tok-acme-reader"
	agentSam   = "tok-agent-sam"
	broken     = "tok-broken"
	operator   = "tok-operator"
	actAsKey   = "bulkhead-act-as-tenant"
	checkName  = "/grpc.health.v1.Health/Check"
	watchName  = "/grpc.health.v1.Health/Watch"
)

var acme = tenant.MustParse("acme")

// methods opens Check and Watch as reads; List is left out.
var methods = ingressgrpc.Methods{
	checkName: {Action: "record.read"},
	watchName: {Action: "collection.list"},
}

// teamAuth is a team's own Authenticator behind the operator token.
func teamAuth() ingress.Authenticator {
	team := ingress.AuthenticatorFunc(func(_ context.Context, tok string) (ingress.Principal, error) {
		switch tok {
		case acmeReader:
			return ingress.Principal{Kind: ingress.KindTenantKey, ID: "k-acme-r", Tenant: acme, Role: "reader"}, nil
		case agentSam:
			return ingress.Principal{Kind: ingress.KindSupport, ID: "sam", Role: "support"}, nil
		case broken:
			return ingress.Principal{}, errors.New("identity service: dial tcp 10.0.0.7:443: connection refused")
		}
		return ingress.Principal{}, ingress.ErrUnauthenticated
	})
	return ingress.Chain(ingress.OperatorToken(sha256.Sum256([]byte(operator))), team)
}

type grantsFunc func(ctx context.Context, agentID string, id tenant.ID) (bool, error)

func (f grantsFunc) LiveGrant(ctx context.Context, agentID string, id tenant.ID) (bool, error) {
	return f(ctx, agentID, id)
}

type fixedLimits limits.Limits

func (l fixedLimits) For(context.Context, tenant.ID) (limits.Limits, error) {
	return limits.Limits(l), nil
}

// seen is what a handler saw of a call the gate let in.
type seen struct {
	Method    string
	Tenant    string
	Principal ingress.Principal
}

// health is the team's service: grpc-go's health service, recording what
// each call saw. Service "panic" makes it panic, "missing" fail.
type health struct {
	healthpb.UnimplementedHealthServer
	mu   sync.Mutex
	seen []seen // guarded by mu
}

func (h *health) record(ctx context.Context, method, service string) error {
	p, _ := ingress.FromContext(ctx)
	id, _ := tenant.FromContext(ctx)
	h.mu.Lock()
	h.seen = append(h.seen, seen{Method: method, Tenant: id.String(), Principal: p})
	h.mu.Unlock()
	switch service {
	case "panic":
		panic("health: " + method + " failed badly")
	case "missing":
		return status.Error(codes.NotFound, "no such service")
	}
	return nil
}

func (h *health) Check(ctx context.Context, r *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if err := h.record(ctx, "Check", r.GetService()); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (h *health) Watch(r *healthpb.HealthCheckRequest, s grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	if err := h.record(s.Context(), "Watch", r.GetService()); err != nil {
		return err
	}
	return s.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
}

func (h *health) List(ctx context.Context, _ *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	if err := h.record(ctx, "List", ""); err != nil {
		return nil, err
	}
	return &healthpb.HealthListResponse{}, nil
}

func (h *health) runs() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

func (h *health) last(t *testing.T) seen {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 {
		t.Fatal("the handler never ran")
	}
	return h.seen[len(h.seen)-1]
}

// recovery is the panic-recovery interceptor teams put outermost, so that
// one call's panic does not take the server down.
func recoverUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = status.Error(codes.Internal, "internal")
		}
	}()
	return h(ctx, req)
}

func recoverStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = status.Error(codes.Internal, "internal")
		}
	}()
	return h(srv, ss)
}

// fixture is a gate in front of the health service on a real gRPC server
// on loopback.
type fixture struct {
	t      *testing.T
	health *health
	audit  *audit.Log
	client healthpb.HealthClient
}

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
		Grants: grantsFunc(func(_ context.Context, agentID string, id tenant.ID) (bool, error) {
			return agentID == "sam" && id == acme, nil
		}),
		Audit:  log,
		Logger: slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&cfg)
	}
	g, err := ingress.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &health{}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(recoverUnary, ingressgrpc.Unary(g, methods)),
		grpc.ChainStreamInterceptor(recoverStream, ingressgrpc.Stream(g, methods)),
	)
	healthpb.RegisterHealthServer(srv, h)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &fixture{t: t, health: h, audit: log, client: healthpb.NewHealthClient(conn)}
}

// ctx returns a context whose calls carry token (none if "") and the
// metadata kv (key, value, ...).
func callCtx(t *testing.T, token string, kv ...string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	if token != "" {
		kv = append([]string{"authorization", "Bearer " + token}, kv...)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// check calls Check and returns the handler's view, or the error.
func (f *fixture) check(service, token string, kv ...string) error {
	_, err := f.client.Check(callCtx(f.t, token, kv...), &healthpb.HealthCheckRequest{Service: service})
	return err
}

// watch opens Watch and reads it to its end.
func (f *fixture) watch(service, token string, kv ...string) error {
	s, err := f.client.Watch(callCtx(f.t, token, kv...), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return err
	}
	for {
		if _, err := s.Recv(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// refused fails the test unless call fails with code and the handler did
// not run; it returns the status message.
func (f *fixture) refused(code codes.Code, what string, call func() error) string {
	f.t.Helper()
	before := f.health.runs()
	err := call()
	if got := status.Code(err); got != code {
		f.t.Errorf("%s: %v, want %s", what, err, code)
	}
	if f.health.runs() != before {
		f.t.Errorf("%s: the handler ran", what)
	}
	return status.Convert(err).Message()
}

func (f *fixture) entries(chain string) []audit.Entry {
	f.t.Helper()
	es, err := f.audit.List(context.Background(), chain, 0, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	return es
}

func (f *fixture) audited(chain, principal, action, decision string) {
	f.t.Helper()
	es := f.entries(chain)
	if len(es) == 0 {
		f.t.Fatalf("nothing audited on chain %s", chain)
	}
	if e := es[len(es)-1]; e.Principal != principal || e.Action != action || e.Decision != decision {
		f.t.Errorf("latest entry of %s: %s %s %s, want %s %s %s", chain, e.Principal, e.Action, e.Decision, principal, action, decision)
	}
}

func TestTheCredentialsTenantReachesTheHandler(t *testing.T) {
	f := newFixture(t, nil)
	smuggled := []string{"x-tenant-id", "beta", "tenant", "beta", "bulkhead-act-as-tenant-bin", "beta"}
	for _, call := range []struct {
		name string
		do   func(kv ...string) error
	}{
		{"Check", func(kv ...string) error { return f.check("", acmeReader, kv...) }},
		{"Watch", func(kv ...string) error { return f.watch("", acmeReader, kv...) }},
	} {
		for _, kv := range [][]string{nil, smuggled} {
			if err := call.do(kv...); err != nil {
				t.Fatalf("%s %q: %v", call.name, kv, err)
			}
			got := f.health.last(t)
			if got.Method != call.name || got.Tenant != "acme" || got.Principal.ID != "k-acme-r" || got.Principal.Tenant != acme {
				t.Errorf("%s %q: the handler saw %+v", call.name, kv, got)
			}
		}
	}
	if es := f.entries("acme"); len(es) != 0 {
		t.Errorf("plain reads were audited: %+v", es)
	}

	t.Run("a support agent under a live grant", func(t *testing.T) {
		if err := f.check("", agentSam, actAsKey, "acme"); err != nil {
			t.Fatal(err)
		}
		if got := f.health.last(t); got.Tenant != "acme" || got.Principal.Kind != ingress.KindSupport {
			t.Errorf("the handler saw %+v", got)
		}
		f.audited("acme", "support:sam", "record.read", "allow")
		if err := f.check("missing", agentSam, actAsKey, "acme"); status.Code(err) != codes.NotFound {
			t.Fatal(err)
		}
		f.audited("acme", "support:sam", "record.read", "allow:NotFound")
		if err := f.watch("", agentSam, actAsKey, "acme"); err != nil {
			t.Fatal(err)
		}
		f.audited("acme", "support:sam", "collection.list", "allow")
		f.refused(codes.PermissionDenied, "no grant", func() error { return f.check("", agentSam, actAsKey, "beta") })
		f.refused(codes.PermissionDenied, "no act-as", func() error { return f.watch("", agentSam) })
	})
}

func TestNoCredential(t *testing.T) {
	// A clock that moves an hour at each look: every unauthenticated call
	// falls in a window of its own and is recorded on its own.
	var hours atomic.Int64
	f := newFixture(t, func(c *ingress.Config) {
		c.Now = func() time.Time { return time.Unix(0, 0).Add(time.Duration(hours.Add(1)) * time.Hour) }
	})
	for _, tc := range []struct {
		name string
		kv   []string
	}{
		{"no token", nil},
		{"another scheme", []string{"authorization", "Basic " + acmeReader}},
		{"no scheme", []string{"authorization", acmeReader}},
		{"two tokens", []string{"authorization", "Bearer " + acmeReader, "authorization", "Bearer " + acmeReader}},
		{"an unknown token", []string{"authorization", "Bearer nope"}},
	} {
		n := len(f.entries(audit.ControlChain))
		f.refused(codes.Unauthenticated, "Check: "+tc.name, func() error { return f.check("", "", tc.kv...) })
		f.refused(codes.Unauthenticated, "Watch: "+tc.name, func() error { return f.watch("", "", tc.kv...) })
		if m := len(f.entries(audit.ControlChain)); m != n+2 {
			t.Errorf("%s: %d denials audited, want 2", tc.name, m-n)
		}
		f.audited(audit.ControlChain, "anonymous", "collection.list", "deny:unauthenticated")
	}
}

func TestForgedActAs(t *testing.T) {
	f := newFixture(t, nil)
	for _, v := range []string{"beta", "acme", ""} {
		f.refused(codes.PermissionDenied, "Check as "+v, func() error { return f.check("", acmeReader, actAsKey, v) })
		f.audited("acme", "tenant_key:k-acme-r@acme", "record.read", "deny:forbidden")
		f.refused(codes.PermissionDenied, "Watch as "+v, func() error { return f.watch("", acmeReader, actAsKey, v) })
		f.audited("acme", "tenant_key:k-acme-r@acme", "collection.list", "deny:forbidden")
	}
	// The key as a client may spell it: gRPC folds metadata keys to lower case.
	f.refused(codes.PermissionDenied, "Check as Beta", func() error { return f.check("", acmeReader, ingress.ActAsHeader, "beta") })
	if es := f.entries("beta"); len(es) != 0 {
		t.Errorf("beta's chain holds acme's attempts: %+v", es)
	}
	// The operator token is refused on the data plane.
	f.refused(codes.PermissionDenied, "operator", func() error { return f.check("", operator) })
}

func TestMethodNotInTheTableIsClosed(t *testing.T) {
	f := newFixture(t, nil)
	for _, tok := range []string{acmeReader, operator, agentSam, ""} {
		msg := f.refused(codes.PermissionDenied, "List with "+tok, func() error {
			_, err := f.client.List(callCtx(t, tok, actAsKey, "acme"), &healthpb.HealthListRequest{})
			return err
		})
		if !strings.Contains(msg, "/grpc.health.v1.Health/List") {
			t.Errorf("message %q does not name the method", msg)
		}
	}
}

func TestInternalFailureKeepsItsText(t *testing.T) {
	f := newFixture(t, nil)
	for name, call := range map[string]func() error{
		"Check": func() error { return f.check("", broken) },
		"Watch": func() error { return f.watch("", broken) },
	} {
		msg := f.refused(codes.Internal, name, call)
		if strings.Contains(msg, "refused") || strings.Contains(msg, "10.0.0.7") {
			t.Errorf("%s: the failure's text reached the client: %q", name, msg)
		}
	}
	if es := f.entries(audit.ControlChain); len(es) != 0 {
		t.Errorf("an internal failure was audited: %+v", es)
	}
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{&ingress.Denial{Reason: ingress.Unauthenticated, Code: "unauthenticated", Detail: "d"}, codes.Unauthenticated, "unauthenticated: d"},
		{&ingress.Denial{Reason: ingress.Forbidden, Code: "forbidden", Detail: "d"}, codes.PermissionDenied, "forbidden: d"},
		{fmt.Errorf("wrapped: %w", &ingress.Denial{Reason: ingress.Throttled, Code: "rate_limited", Detail: "d", RetryAfter: 1500 * time.Millisecond}),
			codes.ResourceExhausted, "rate_limited: d (retry after 1500 ms)"},
		{&ingress.Denial{Reason: ingress.Unavailable, Code: "overloaded", Detail: "d", RetryAfter: time.Second}, codes.Unavailable, "overloaded: d (retry after 1000 ms)"},
		{context.Canceled, codes.Canceled, "the call was cancelled"},
		{fmt.Errorf("acquire: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "the call timed out"},
		{errors.New("secret: password=hunter2"), codes.Internal, "internal: the server failed to handle the call"},
	} {
		s := status.Convert(ingressgrpc.Status(tc.err))
		if s.Code() != tc.code || s.Message() != tc.msg {
			t.Errorf("Status(%v) = %s %q, want %s %q", tc.err, s.Code(), s.Message(), tc.code, tc.msg)
		}
	}
}

// TestPanickingHandlerGivesItsSlotBack: under a recovery interceptor the
// server outlives a handler's panic; the tenant's admission slot must come
// back, and an audited call (act-as) is recorded as allow:panic.
func TestPanickingHandlerGivesItsSlotBack(t *testing.T) {
	ctrl := admission.New(admission.Options{
		Limits:  fixedLimits{MaxConcurrent: 1, QueueDepth: 1},
		MaxWait: 200 * time.Millisecond,
	})
	f := newFixture(t, func(c *ingress.Config) { c.Admission = ctrl })
	for range 3 {
		if err := f.check("panic", acmeReader); status.Code(err) != codes.Internal {
			t.Fatalf("a panicking Check: %v", err)
		}
		if err := f.watch("panic", acmeReader); status.Code(err) != codes.Internal {
			t.Fatalf("a panicking Watch: %v", err)
		}
	}
	if err := f.check("", acmeReader); err != nil {
		t.Fatalf("after panics: %v", err)
	}
	if err := f.check("panic", agentSam, actAsKey, "acme"); status.Code(err) != codes.Internal {
		t.Fatalf("a panicking act-as Check: %v", err)
	}
	var panics int
	for _, e := range f.entries("acme") {
		if e.Decision == "allow:panic" {
			panics++
		} else if strings.HasPrefix(e.Decision, "allow") {
			t.Errorf("a call whose handler panicked was audited as %s", e.Decision)
		}
	}
	if panics != 1 {
		t.Errorf("the act-as call whose handler panicked is audited %d times as allow:panic, want 1", panics)
	}
	if err := f.watch("", acmeReader); err != nil {
		t.Fatalf("after panics: %v", err)
	}
}
