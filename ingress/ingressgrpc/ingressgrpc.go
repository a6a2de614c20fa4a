// Package ingressgrpc puts an ingress.Gate in front of a gRPC server: the
// same steps as for net/http (authenticate, settle the tenant, authorize,
// rate-limit, admit, audit denials), reading the credential from the
// "authorization" metadata ("Bearer <token>") and the act-as tenant from
// "bulkhead-act-as-tenant". A handler finds the principal with
// ingress.FromContext and the tenant with tenant.FromContext.
//
//	srv := grpc.NewServer(
//		grpc.UnaryInterceptor(ingressgrpc.Unary(gate, methods)),
//		grpc.StreamInterceptor(ingressgrpc.Stream(gate, methods)),
//	)
//
// Every method must be named in the Methods table: a method that is not is
// refused (codes.PermissionDenied), so a service added later is closed
// until someone decides who may call it.
package ingressgrpc

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Method says how the gate treats one gRPC method.
type Method struct {
	// Action is the policy action.
	Action string
	// Control marks an operators-only method.
	Control bool
	// Write marks a method that may change something (control-plane
	// writes are audited).
	Write bool
	// Collection returns the collection a unary data-plane call acts on,
	// from its request message, for the policy (nil: none; streams have
	// none).
	Collection func(req any) string
	// Tenant returns the tenant a unary control-plane call acts on, from
	// its request message, for the policy and the audit log (nil: a
	// fleet-wide action). An invalid id should be zero: the handler
	// refuses it.
	Tenant func(req any) tenant.ID
}

// Methods maps full method names ("/pkg.Service/Method") to their
// treatment.
type Methods map[string]Method

// actAsKey is the act-as header as gRPC metadata (keys are lower case).
var actAsKey = strings.ToLower(ingress.ActAsHeader)

// Unary returns a unary server interceptor that lets a call reach its
// handler only through g.
func Unary(g *ingress.Gate, ms Methods) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		pass, err := enter(ctx, g, ms, info.FullMethod, req)
		if err != nil {
			return nil, err
		}
		defer done(pass) // releases admission, also if the handler panics
		resp, err := handler(pass.Context(), req)
		if aerr := pass.Done(outcome(err)); aerr != nil {
			return nil, Status(aerr) // an answer that could not be audited is withheld
		}
		return resp, err
	}
}

// Stream returns a stream server interceptor that lets a stream reach its
// handler only through g; the handler's stream carries the gate's context.
func Stream(g *ingress.Gate, ms Methods) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		pass, err := enter(ss.Context(), g, ms, info.FullMethod, nil)
		if err != nil {
			return err
		}
		defer done(pass)
		err = handler(srv, &stream{ServerStream: ss, ctx: pass.Context()})
		if aerr := pass.Done(outcome(err)); aerr != nil {
			return Status(aerr)
		}
		return err
	}
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }

func enter(ctx context.Context, g *ingress.Gate, ms Methods, full string, msg any) (*ingress.Pass, error) {
	m, ok := ms[full]
	if !ok {
		return nil, status.Error(codes.PermissionDenied, "forbidden: the method "+full+" is not open to any credential")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	req := ingress.Request{Action: m.Action, Control: m.Control, Write: m.Write}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		req.Client = p.Addr.String()
		if host, _, err := net.SplitHostPort(req.Client); err == nil {
			req.Client = host
		}
	}
	if vals := md.Get("authorization"); len(vals) == 1 {
		req.Token = ingress.ParseBearer(vals[0])
	}
	switch {
	case m.Control && m.Tenant != nil && msg != nil:
		req.Tenant = m.Tenant(msg)
	case !m.Control:
		req.ActAs = md.Get(actAsKey)
		if m.Collection != nil && msg != nil {
			req.Collection = m.Collection(msg)
		}
	}
	pass, err := g.Enter(ctx, req)
	if err != nil {
		return nil, Status(err)
	}
	return pass, nil
}

// Status is the gRPC status of a gate's error: a denial's code (with
// its stable code and detail in the message, and retry-after-ms metadata
// hints left to the caller), codes.Internal for anything else, without
// its text.
func Status(err error) error {
	var d *ingress.Denial
	if !errors.As(err, &d) {
		if errors.Is(err, context.Canceled) {
			return status.Error(codes.Canceled, "the call was cancelled")
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return status.Error(codes.DeadlineExceeded, "the call timed out")
		}
		return status.Error(codes.Internal, "internal: the server failed to handle the call")
	}
	c := codes.Unavailable
	switch d.Reason {
	case ingress.Unauthenticated:
		c = codes.Unauthenticated
	case ingress.Forbidden:
		c = codes.PermissionDenied
	case ingress.Throttled:
		c = codes.ResourceExhausted
	}
	msg := d.Code + ": " + d.Detail
	if d.RetryAfter > 0 {
		msg += " (retry after " + strconv.FormatInt(d.RetryAfter.Milliseconds(), 10) + " ms)"
	}
	return status.Error(c, msg)
}

// done ends a call's pass; a handler that panicked is audited as such and
// its panic goes on (to a recovery interceptor, if any).
func done(pass *ingress.Pass) {
	if p := recover(); p != nil {
		_ = pass.Done("allow:panic")
		panic(p)
	}
	_ = pass.Done("")
}

// outcome is the audit decision of a call the gate let in.
func outcome(err error) string {
	if err == nil {
		return "allow"
	}
	return "allow:" + status.Code(err).String()
}
