package ingress

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
)

// Authenticator turns a bearer token into a principal. It returns an
// error wrapping ErrNotMine for a token that is not of its scheme (a chain
// then asks the next one), ErrUnauthenticated for one of its scheme that is
// not valid, ErrSuspended for a valid credential of a suspended tenant,
// and any other error for a failure to decide (answered as an internal
// error, never as a denial or a pass).
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// AuthenticatorFunc is a function that is an Authenticator.
type AuthenticatorFunc func(ctx context.Context, token string) (Principal, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, token string) (Principal, error) {
	return f(ctx, token)
}

// Chain returns an Authenticator that asks each of auths in turn: the
// first one that does not answer ErrNotMine decides. A token no one claims
// is ErrUnauthenticated.
func Chain(auths ...Authenticator) Authenticator {
	return AuthenticatorFunc(func(ctx context.Context, token string) (Principal, error) {
		for _, a := range auths {
			p, err := a.Authenticate(ctx, token)
			if errors.Is(err, ErrNotMine) {
				continue
			}
			return p, err
		}
		return Principal{}, ErrUnauthenticated
	})
}

// OperatorToken authenticates the operator token whose SHA-256 is hash
// (the token itself need not be kept in memory) as the principal
// {Kind: KindOperator, ID: "operator", Role: "operator"}. The comparison
// takes the same time whatever the token; any other token is ErrNotMine.
func OperatorToken(hash [32]byte) Authenticator {
	return AuthenticatorFunc(func(_ context.Context, token string) (Principal, error) {
		sum := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(sum[:], hash[:]) != 1 {
			return Principal{}, ErrNotMine
		}
		return Principal{Kind: KindOperator, ID: "operator", Role: "operator"}, nil
	})
}
