package ingressgrpc_test

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ingress/ingressgrpc"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// whoami answers health checks with the tenant the gate settled.
type whoami struct {
	grpc_health_v1.UnimplementedHealthServer
	seen chan tenant.ID
}

func (s whoami) Check(ctx context.Context, _ *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	s.seen <- id
	return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
}

// A gRPC service behind the gate: the tenant comes from the call's
// credential, and a method left out of the table is closed.
func Example() {
	gate, err := ingress.New(ingress.Config{
		Authenticator: ingress.AuthenticatorFunc(func(_ context.Context, token string) (ingress.Principal, error) {
			if token == "token-of-acme" {
				return ingress.Principal{Kind: ingress.KindTenantKey, ID: "k1", Tenant: tenant.MustParse("acme"), Role: "reader"}, nil
			}
			return ingress.Principal{}, ingress.ErrUnauthenticated
		}),
	})
	if err != nil {
		panic(err)
	}
	methods := ingressgrpc.Methods{
		grpc_health_v1.Health_Check_FullMethodName: {Action: "record.read"},
	}
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(ingressgrpc.Unary(gate, methods)),
		grpc.StreamInterceptor(ingressgrpc.Stream(gate, methods)),
	)
	svc := whoami{seen: make(chan tenant.ID, 1)}
	grpc_health_v1.RegisterHealthServer(srv, svc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Stop()

	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	client := grpc_health_v1.NewHealthClient(conn)
	check := func(token string) {
		ctx := context.Background()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		if _, err := client.Check(ctx, &grpc_health_v1.HealthCheckRequest{}); err != nil {
			fmt.Println(status.Code(err))
			return
		}
		fmt.Println("served tenant", <-svc.seen)
	}
	check("token-of-acme")
	check("forged")
	check("")

	// Watch is not in the table: closed to every credential.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer token-of-acme")
	w, err := client.Watch(ctx, &grpc_health_v1.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	fmt.Println(status.Code(err))
	// Output:
	// served tenant acme
	// Unauthenticated
	// Unauthenticated
	// PermissionDenied
}
