package ingress

import (
	"errors"
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/ratelimit"
)

// Sentinels an Authenticator (or a store behind it) wraps so that the
// ingress answers with the right status: any other error is an internal
// failure (500 / codes.Internal), never a denial.
var (
	// ErrUnauthenticated: no credential, or one that is not valid.
	ErrUnauthenticated = errors.New("ingress: unauthenticated")
	// ErrSuspended: a valid credential of a suspended tenant.
	ErrSuspended = errors.New("ingress: tenant suspended")
	// ErrNotMine: the token is not of the authenticator's scheme; the
	// next authenticator of a chain gets it.
	ErrNotMine = errors.New("ingress: not this authenticator's credential")
)

// Reason classifies a refusal; each transport maps it to its status.
type Reason int

// Refusal reasons.
const (
	Unauthenticated Reason = iota + 1 // 401, codes.Unauthenticated
	Forbidden                         // 403, codes.PermissionDenied
	Throttled                         // 429, codes.ResourceExhausted
	Unavailable                       // 503, codes.Unavailable
)

// Denial is the ingress refusing a request: why (Reason), a stable code and
// a detail for the client. Denied requests reach no handler.
type Denial struct {
	Reason Reason
	Code   string
	Detail string
	// InvalidToken is set when a credential was sent but is not valid
	// (WWW-Authenticate: error="invalid_token").
	InvalidToken bool
	// RetryAfter is set for Throttled and Unavailable.
	RetryAfter time.Duration
	// RateLimit is the rate limiter's decision for a request it refused.
	RateLimit ratelimit.Decision
}

func (d *Denial) Error() string { return d.Code + ": " + d.Detail }

// Status is the HTTP status of d.
func (d *Denial) Status() int {
	switch d.Reason {
	case Unauthenticated:
		return http.StatusUnauthorized
	case Forbidden:
		return http.StatusForbidden
	case Throttled:
		return http.StatusTooManyRequests
	default:
		return http.StatusServiceUnavailable
	}
}

// Details of the ingress's denials.
const (
	DetailUnauthenticated = "send a valid credential as 'Authorization: Bearer <token>'"
	detailSuspended       = "the tenant is suspended; an operator can resume it"
)

func deny(r Reason, code, detail string) *Denial {
	return &Denial{Reason: r, Code: code, Detail: detail}
}

func forbidden(detail string) *Denial { return deny(Forbidden, "forbidden", detail) }

// classify turns an authenticator's error into a denial, or returns it as
// it is (an internal failure).
func classify(err error) error {
	switch {
	case errors.Is(err, ErrSuspended):
		return deny(Forbidden, "tenant_suspended", detailSuspended)
	case errors.Is(err, ErrUnauthenticated), errors.Is(err, ErrNotMine):
		return &Denial{Reason: Unauthenticated, Code: "unauthenticated", Detail: DetailUnauthenticated, InvalidToken: true}
	}
	return err
}
