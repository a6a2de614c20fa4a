package tenant

import (
	"context"
	"errors"
	"fmt"
)

// ErrMissing reports a context that carries no tenant. Data access fails
// closed with it: no tenant never means "all tenants".
var ErrMissing = errors.New("no tenant in context")

// ErrInvalid reports a string that is not a valid tenant ID.
var ErrInvalid = errors.New("invalid tenant id")

// MinLen and MaxLen bound the length of a tenant ID.
const (
	MinLen = 2
	MaxLen = 40
)

// reserved holds the words no tenant may be called.
var reserved = map[string]bool{
	"admin": true, "system": true, "public": true, "default": true, "bulkhead": true,
}

// ID is a validated tenant identifier. It is comparable and immutable; its
// zero value means "no tenant".
type ID struct{ s string }

// Parse validates s and returns it as an ID. Errors wrap ErrInvalid and say
// which rule s breaks.
func Parse(s string) (ID, error) {
	if err := check(s); err != nil {
		return ID{}, fmt.Errorf("%w %q: %s", ErrInvalid, truncate(s), err.Error())
	}
	return ID{s: s}, nil
}

// MustParse is Parse for constants and tests; it panics on an invalid ID.
func MustParse(s string) ID {
	id, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return id
}

type ruleError string

func (e ruleError) Error() string { return string(e) }

func check(s string) error {
	if len(s) < MinLen || len(s) > MaxLen {
		return ruleError(fmt.Sprintf("must be %d to %d characters", MinLen, MaxLen))
	}
	if s[0] < 'a' || s[0] > 'z' {
		return ruleError("must start with a lowercase letter a-z")
	}
	if s[len(s)-1] == '-' {
		return ruleError("must not end with '-'")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return ruleError("may contain only a-z, 0-9 and '-'")
		}
	}
	if reserved[s] {
		return ruleError("is a reserved word")
	}
	return nil
}

// truncate keeps error messages bounded when the input is hostile.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// String returns the ID's canonical text ("" for the zero ID).
func (id ID) String() string { return id.s }

// IsZero reports whether id is the zero ID (no tenant).
func (id ID) IsZero() bool { return id.s == "" }

// MarshalText encodes the ID as its canonical text.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.s), nil }

// UnmarshalText parses text with Parse, so decoding cannot bypass validation.
func (id *ID) UnmarshalText(text []byte) error {
	p, err := Parse(string(text))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// StorageName is the one function that derives storage identifiers (file
// names, schema and database names) from a tenant ID. It is injective
// ('-' maps to '_', which IDs cannot contain), always carries the fixed
// prefix "t_" so that no tenant can name a system object such as
// pg_catalog or public, and is at most 42 bytes, under PostgreSQL's 63-byte
// identifier limit. Callers still quote or confine the result.
func (id ID) StorageName() string {
	if id.s == "" {
		panic("tenant: StorageName of the zero ID")
	}
	b := make([]byte, 0, len(id.s)+2)
	b = append(b, 't', '_')
	for i := 0; i < len(id.s); i++ {
		c := id.s[i]
		if c == '-' {
			c = '_'
		}
		b = append(b, c)
	}
	return string(b)
}

type ctxKey struct{}

// WithID returns a copy of ctx that carries id. It panics on the zero ID,
// since a context that claims a tenant but names none is a programming error.
func WithID(ctx context.Context, id ID) context.Context {
	if id.IsZero() {
		panic("tenant: WithID with the zero ID")
	}
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the tenant ctx carries, or ErrMissing.
func FromContext(ctx context.Context) (ID, error) {
	id, ok := ctx.Value(ctxKey{}).(ID)
	if !ok || id.IsZero() {
		return ID{}, ErrMissing
	}
	return id, nil
}
