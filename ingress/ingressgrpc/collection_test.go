package ingressgrpc_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ingress/ingressgrpc"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// collectionPolicy allows reads of collection "notes" only, and remembers
// the collections it was asked about.
type collectionPolicy struct {
	mu   sync.Mutex
	seen []string
}

func (p *collectionPolicy) Authorize(_ context.Context, r policy.Request) (policy.Decision, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, r.Collection)
	return policy.Decision{Allow: r.Collection == "notes" && r.Principal.Tenant == r.Tenant}, nil
}

// A unary method's Collection reads the collection from the request
// message, and the policy decides on it.
func TestMethodCollectionReachesThePolicy(t *testing.T) {
	pol := &collectionPolicy{}
	gate, err := ingress.New(ingress.Config{
		Authenticator: ingress.AuthenticatorFunc(func(context.Context, string) (ingress.Principal, error) {
			return ingress.Principal{Kind: ingress.KindTenantKey, ID: "k", Tenant: tenant.MustParse("acme"), Role: "reader"}, nil
		}),
		Policy: pol,
	})
	if err != nil {
		t.Fatal(err)
	}
	methods := ingressgrpc.Methods{grpc_health_v1.Health_Check_FullMethodName: {
		Action:     "record.read",
		Collection: func(req any) string { return req.(*grpc_health_v1.HealthCheckRequest).GetService() },
	}}
	client := serveHealth(t, gate, methods, whoami{seen: make(chan tenant.ID, 10)})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer k")
	if _, err := client.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: "notes"}); err != nil {
		t.Fatalf("a read of notes: %v", err)
	}
	if _, err := client.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: "salaries"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a read of salaries: %v, want PermissionDenied", err)
	}
	pol.mu.Lock()
	defer pol.mu.Unlock()
	if len(pol.seen) != 2 || pol.seen[0] != "notes" || pol.seen[1] != "salaries" {
		t.Fatalf("the policy was asked about collections %q", pol.seen)
	}
}

// tenantPolicy allows the operator's control-plane action on tenant acme
// only, and remembers the tenants it was asked about.
type tenantPolicy struct {
	mu   sync.Mutex
	seen []tenant.ID
}

func (p *tenantPolicy) Authorize(_ context.Context, r policy.Request) (policy.Decision, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, r.Tenant)
	return policy.Decision{Allow: r.Principal.Kind == ingress.KindOperator && r.Tenant == tenant.MustParse("acme")}, nil
}

// A control-plane method's Tenant reads the tenant it acts on from the
// request, and the policy decides on it.
func TestMethodTenantReachesThePolicy(t *testing.T) {
	pol := &tenantPolicy{}
	gate, err := ingress.New(ingress.Config{
		Authenticator: ingress.AuthenticatorFunc(func(context.Context, string) (ingress.Principal, error) {
			return ingress.Principal{Kind: ingress.KindOperator, ID: "operator", Role: "operator"}, nil
		}),
		Policy: pol,
	})
	if err != nil {
		t.Fatal(err)
	}
	methods := ingressgrpc.Methods{grpc_health_v1.Health_Check_FullMethodName: {
		Action: "tenant.read", Control: true,
		Tenant: func(req any) tenant.ID {
			id, _ := tenant.Parse(req.(*grpc_health_v1.HealthCheckRequest).GetService())
			return id
		},
	}}
	client := serveHealth(t, gate, methods, operatorHealth{})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer op")
	if _, err := client.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: "acme"}); err != nil {
		t.Fatalf("the operator on acme: %v", err)
	}
	if _, err := client.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: "globex"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("the operator on globex: %v, want PermissionDenied", err)
	}
	pol.mu.Lock()
	defer pol.mu.Unlock()
	if len(pol.seen) != 2 || pol.seen[0] != tenant.MustParse("acme") || pol.seen[1] != tenant.MustParse("globex") {
		t.Fatalf("the policy was asked about tenants %v", pol.seen)
	}
}

// operatorHealth answers every check: the control plane has no tenant in
// its context.
type operatorHealth struct {
	grpc_health_v1.UnimplementedHealthServer
}

func (operatorHealth) Check(context.Context, *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
}

// serveHealth serves svc behind gate's unary interceptor on a loopback
// listener for the test and returns a client of it.
func serveHealth(t *testing.T, gate *ingress.Gate, methods ingressgrpc.Methods, svc grpc_health_v1.HealthServer) grpc_health_v1.HealthClient {
	t.Helper()
	srv := grpc.NewServer(grpc.UnaryInterceptor(ingressgrpc.Unary(gate, methods)))
	grpc_health_v1.RegisterHealthServer(srv, svc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return grpc_health_v1.NewHealthClient(conn)
}
