package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// ControlChain is the chain of the control plane (operators, support
// agents, fleet-wide actions). Every other chain is named by a tenant id,
// and no tenant id can be ControlChain (ids start with a letter).
const ControlChain = "_control"

// Entry is one audit record. It holds who did what to which resource and
// what was decided — never data or secrets: the API takes only these
// fields, each bounded in length and free of control characters.
//
// Append sets Seq, Time, Prev and Hash; the caller sets the rest.
type Entry struct {
	// Seq numbers the entries of a chain 1, 2, 3, … without gaps.
	Seq int64 `json:"seq"`
	// Chain is the tenant id whose chain holds the entry, or ControlChain.
	Chain string `json:"chain"`
	// Time is when the entry was appended (UTC, nanoseconds).
	Time time.Time `json:"time"`
	// Principal names the caller, e.g. "tenant_key:k_…", "operator:ops-1";
	// empty for an unauthenticated request.
	Principal string `json:"principal"`
	// Action is what was attempted, e.g. "tenant.suspend" (required).
	Action string `json:"action"`
	// Resource names what was acted on, e.g. "tenant/acme".
	Resource string `json:"resource"`
	// Decision is the outcome, e.g. "allow", "deny" (required).
	Decision string `json:"decision"`
	// RequestID ties the entry to the request's logs.
	RequestID string `json:"request_id"`
	// Prev is the Hash of the entry before it in the chain, or Genesis for
	// Seq 1.
	Prev string `json:"prev"`
	// Hash is the hex SHA-256 of the entry's canonical encoding (see
	// ComputeHash); it covers every field above, Chain, Seq and Prev included.
	Hash string `json:"hash"`
}

// Genesis is the Prev of every chain's first entry: the hex SHA-256 of a
// fixed string.
var Genesis = func() string {
	h := sha256.Sum256([]byte("bulkhead audit genesis v1"))
	return hex.EncodeToString(h[:])
}()

// OffboardAction is the action of the entry that closes an incarnation of
// a tenant on its chain: it is appended before the tenant is offboarded.
// A tenant created again with the same id is a new tenant, and its chain
// as the tenant sees it begins after the last such entry; the whole chain,
// every incarnation included, stays one chain that Verify checks.
const OffboardAction = "tenant.offboard"

// BeginAction is the action of the entry that opens an incarnation of a
// tenant on its chain: it is appended when the tenant is created. The
// chain as the tenant sees it begins with the last such entry, or after
// the last OffboardAction, whichever is later — so a tenant offboarded
// without the closing entry (by a version that did not write it, or
// through the library alone), and whatever was recorded for its id before
// the new tenant existed, are not shown to the new tenant either.
const BeginAction = "tenant.begin"

// Field limits, in bytes.
const (
	maxPrincipal = 256
	maxAction    = 64
	maxResource  = 512
	maxDecision  = 32
	maxRequestID = 128
)

// ErrInvalidEntry is returned (wrapped) for an entry Append refuses: a bad
// chain name, a missing action or decision, a field too long or holding
// control characters.
var ErrInvalidEntry = errors.New("invalid audit entry")

// validChain reports whether chain is ControlChain or a valid tenant id.
func validChain(chain string) error {
	if chain == ControlChain {
		return nil
	}
	if _, err := tenant.Parse(chain); err != nil {
		return fmt.Errorf("%w: chain %q is neither %q nor a tenant id: %v", ErrInvalidEntry, chain, ControlChain, err)
	}
	return nil
}

// validate checks the fields the caller sets.
func (e *Entry) validate() error {
	if err := validChain(e.Chain); err != nil {
		return err
	}
	for _, f := range []struct {
		name, v  string
		max      int
		required bool
	}{
		{"principal", e.Principal, maxPrincipal, false},
		{"action", e.Action, maxAction, true},
		{"resource", e.Resource, maxResource, false},
		{"decision", e.Decision, maxDecision, true},
		{"request id", e.RequestID, maxRequestID, false},
	} {
		switch {
		case f.required && f.v == "":
			return fmt.Errorf("%w: %s is required", ErrInvalidEntry, f.name)
		case len(f.v) > f.max:
			return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrInvalidEntry, f.name, len(f.v), f.max)
		case !utf8.ValidString(f.v):
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidEntry, f.name)
		}
		for _, r := range f.v {
			if unicode.IsControl(r) {
				return fmt.Errorf("%w: %s holds control character %U", ErrInvalidEntry, f.name, r)
			}
		}
	}
	return nil
}

// ComputeHash returns the hex SHA-256 of e's canonical encoding: a version
// tag, then Chain, Seq, Time (Unix nanoseconds), Principal, Action,
// Resource, Decision, RequestID and Prev in that order, integers as 8 bytes
// big-endian and each string preceded by its length as 8 bytes big-endian,
// so no two different entries encode alike. e.Hash is ignored.
func ComputeHash(e Entry) string {
	h := sha256.New()
	var n [8]byte
	num := func(v int64) {
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	str := func(s string) {
		num(int64(len(s)))
		h.Write([]byte(s))
	}
	str("bulkhead-audit-entry-v1")
	str(e.Chain)
	num(e.Seq)
	num(e.Time.UnixNano())
	str(e.Principal)
	str(e.Action)
	str(e.Resource)
	str(e.Decision)
	str(e.RequestID)
	str(e.Prev)
	return hex.EncodeToString(h.Sum(nil))
}
