package ingress

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Principal kinds, as the policy names them. The gate knows these five: a
// principal of any other kind is refused on every plane (fail closed).
// Analysts reach only the analytics plane (Gate.Analytics).
const (
	KindOperator   = policy.KindOperator
	KindSupport    = policy.KindSupport
	KindTenantKey  = policy.KindTenantKey
	KindTenantUser = policy.KindTenantUser
	KindAnalyst    = policy.KindAnalyst
)

// Principal is who a request's credential speaks for. Tenant is set for
// tenant principals only and comes from the credential alone, never from
// anything else in the request.
type Principal struct {
	Kind   string
	ID     string
	Tenant tenant.ID
	Role   string
}

// IsTenant reports whether p speaks for one tenant (an API key or a
// tenant user).
func (p Principal) IsTenant() bool { return p.Kind == KindTenantKey || p.Kind == KindTenantUser }

// Policy returns p as the policy engine names it.
func (p Principal) Policy() policy.Principal {
	return policy.Principal{Kind: p.Kind, ID: p.ID, Tenant: p.Tenant, Role: p.Role}
}

// maxPrincipalName bounds String (the audit log's principal field).
const maxPrincipalName = 256

// String names the principal in the audit log: kind, id and, for tenant
// principals, their tenant. Never a secret. Control characters (C0, DEL
// and C1) become '?' and an over-long name (a JWT's issuer and subject are
// the caller's) is cut and suffixed with a digest of the whole, so it
// stays distinct.
func (p Principal) String() string {
	if p.Kind == "" {
		return "anonymous"
	}
	s := p.Kind + ":" + p.ID
	if p.IsTenant() {
		s += "@" + p.Tenant.String()
	}
	return auditText(s, maxPrincipalName)
}

// auditText makes s fit a field of the audit log that holds at most limit
// bytes (limit >= 40): control characters (C0, DEL and C1) and invalid
// UTF-8 become '?', and an over-long s is cut and suffixed with a digest
// of the whole, so it stays distinct. The audit log refuses an entry with
// either, and an entry it refuses is not recorded.
func auditText(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f && r <= 0x9f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
	if len(s) > limit {
		sum := sha256.Sum256([]byte(s))
		cut := limit - 40
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…#" + hex.EncodeToString(sum[:16])
	}
	return s
}

type principalKey struct{}

// NewContext returns ctx carrying p. The ingress puts the principal there
// after authentication; handlers read it with FromContext.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of the request ctx belongs to.
func FromContext(ctx context.Context) (Principal, bool) {
	switch p := ctx.Value(principalKey{}).(type) {
	case *Pass: // the gate's
		return p.Principal, true
	case Principal:
		return p, true
	}
	return Principal{}, false
}
