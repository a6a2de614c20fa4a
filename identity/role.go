package identity

import (
	"errors"
	"fmt"
)

// ErrInvalidRole: the role is not admin, writer or reader.
var ErrInvalidRole = errors.New("invalid role")

// Role is what a principal may do in its tenant, whether it holds an API
// key or a token: admin ⊃ writer ⊃ reader.
type Role string

// Roles.
const (
	RoleAdmin  Role = "admin"
	RoleWriter Role = "writer"
	RoleReader Role = "reader"
)

// ParseRole returns the Role named s, or an error wrapping ErrInvalidRole.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleWriter, RoleReader:
		return r, nil
	}
	return "", fmt.Errorf("%w %q (use admin, writer or reader)", ErrInvalidRole, s)
}

func (r Role) rank() int {
	switch r {
	case RoleAdmin:
		return 3
	case RoleWriter:
		return 2
	case RoleReader:
		return 1
	}
	return 0
}

// Allows reports whether a principal with role r may act with role need.
func (r Role) Allows(need Role) bool { return r.rank() > 0 && r.rank() >= need.rank() }
