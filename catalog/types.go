package catalog

import (
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/identity"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotFound: no such tenant.
	ErrNotFound = errors.New("tenant not found")
	// ErrExists: a tenant with that id already exists.
	ErrExists = errors.New("tenant already exists")
	// ErrKeyNotFound: no such key for this tenant.
	ErrKeyNotFound = errors.New("key not found")
	// ErrUnauthenticated: the token is malformed, unknown or revoked.
	ErrUnauthenticated = errors.New("invalid or revoked credential")
	// ErrSuspended: the credential is valid but its tenant is suspended.
	ErrSuspended = errors.New("tenant is suspended")
	// ErrInvalidRole is identity.ErrInvalidRole: the role is not admin,
	// writer or reader.
	ErrInvalidRole = identity.ErrInvalidRole
	// ErrInvalidTier: the tier is not a known tier.
	ErrInvalidTier = errors.New("invalid tier")
	// ErrInvalidName: a tenant or key name is empty, too long or not printable.
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidState: the tenant's state does not allow the change.
	ErrInvalidState = errors.New("invalid tenant state")
)

// State is a tenant's lifecycle state.
type State string

// Tenant states. Only active and suspended tenants have a placement the
// router will use; only active tenants' credentials authenticate.
const (
	Provisioning State = "provisioning"
	Active       State = "active"
	Suspended    State = "suspended"
	Deleting     State = "deleting"
)

// Tiers are the service tiers a tenant can be on.
var Tiers = []string{"free", "standard", "enterprise"}

// DefaultTier is the tier of a tenant created without one.
const DefaultTier = "standard"

// ValidTier reports whether tier is known.
func ValidTier(tier string) error {
	for _, t := range Tiers {
		if t == tier {
			return nil
		}
	}
	return fmt.Errorf("%w %q (use free, standard or enterprise)", ErrInvalidTier, tier)
}

// ValidName reports whether name is a usable tenant or key name: 1–200
// bytes of printable UTF-8 without control characters.
func ValidName(name string) error {
	if len(name) < 1 || len(name) > 200 {
		return fmt.Errorf("%w: must be 1 to 200 bytes", ErrInvalidName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return fmt.Errorf("%w: control or invalid characters", ErrInvalidName)
		}
	}
	return nil
}

// Role is identity.Role, what a tenant API key or token may do: admin ⊃
// writer ⊃ reader.
type Role = identity.Role

// Key roles.
const (
	RoleAdmin  = identity.RoleAdmin
	RoleWriter = identity.RoleWriter
	RoleReader = identity.RoleReader
)

// ParseRole returns the Role named s, or an error wrapping ErrInvalidRole
// (identity.ParseRole).
func ParseRole(s string) (Role, error) { return identity.ParseRole(s) }

// Tenant is a tenant's entry in the catalog.
type Tenant struct {
	ID        tenant.ID       `json:"id"`
	Name      string          `json:"name"`
	Tier      string          `json:"tier"`
	State     State           `json:"state"`
	Placement store.Placement `json:"placement"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// TenantUpdate is a partial change to a tenant; nil fields stay as they
// are. All of it is written in one transaction, or none of it.
type TenantUpdate struct {
	Name *string
	Tier *string
	// Limits replaces the tenant's stored limit overrides as a whole (an
	// empty set removes them).
	Limits *limits.Overrides
	// Retention changes the tenant's retention rules: each collection it
	// names gets its age, or loses its rule for a zero age; the others
	// keep theirs (nil: no change).
	Retention Retention
	// Events replaces the tenant's event settings (nil: no change).
	Events *EventSettings
}

// Key is a tenant API key's metadata. The secret is never stored; only its
// SHA-256 hash is.
type Key struct {
	ID         string     `json:"id"`
	Tenant     tenant.ID  `json:"tenant"`
	Role       Role       `json:"role"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// Principal is who an authenticated tenant credential speaks for.
type Principal struct {
	Tenant tenant.ID
	KeyID  string
	Role   Role
}
