package relay

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Defaults of a Relay.
const (
	// DefaultStream is the JetStream stream the relay publishes to.
	DefaultStream = "BULKHEAD_EVENTS"
	// DefaultSubjectPrefix is the first token of every subject:
	// <prefix>.<tenant>.<collection>.
	DefaultSubjectPrefix = "bulkhead"
	// Consumer is the name under which the relay saves its position in
	// each tenant's database (store.Tx.SetEventOffset).
	Consumer = "nats_relay"
)

// The headers of every message, beside Nats-Msg-Id.
const (
	HeaderTenant      = "Bulkhead-Tenant"
	HeaderSeq         = "Bulkhead-Seq"
	HeaderIncarnation = "Bulkhead-Incarnation"
)

// ErrSubject: a tenant id, collection or prefix is not a safe NATS subject
// token (it holds '.', '*', '>', white space or a control character).
var ErrSubject = errors.New("not a safe NATS subject token")

// Subject returns the subject of an event of tenant id in collection:
// <prefix>.<tenant>.<collection>. Tenant ids (a-z, 0-9, '-') and
// collection names (a-z, 0-9, '_') are safe tokens by their rules; Subject
// still checks every token and refuses, rather than escapes, anything
// else, so that no tenant can reach another's subject space.
func Subject(prefix string, id tenant.ID, collection string) (string, error) {
	for _, tok := range []string{id.String(), collection} {
		if err := checkToken(tok); err != nil {
			return "", err
		}
	}
	if err := checkPrefix(prefix); err != nil {
		return "", err
	}
	return prefix + "." + id.String() + "." + collection, nil
}

// checkToken accepts 1 to 255 characters of A-Z, a-z, 0-9, '-' and '_'.
func checkToken(tok string) error {
	if tok == "" || len(tok) > 255 {
		return fmt.Errorf("%w: %q must be 1 to 255 characters", ErrSubject, tok)
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: %q holds %q (use A-Z, a-z, 0-9, '-' and '_')", ErrSubject, tok, c)
		}
	}
	return nil
}

// checkPrefix accepts one or more safe tokens joined by '.'.
func checkPrefix(prefix string) error {
	start := 0
	for i := 0; i <= len(prefix); i++ {
		if i == len(prefix) || prefix[i] == '.' {
			if err := checkToken(prefix[start:i]); err != nil {
				return fmt.Errorf("subject prefix %q: %w", prefix, err)
			}
			start = i + 1
		}
	}
	return nil
}

// MsgID returns the JetStream de-duplication id of a tenant's event:
// <tenant>.<incarnation>.<seq>, the incarnation being the instant the
// tenant's id was last created, in Unix microseconds. A tenant deleted and
// created again numbers its events from 1 again under a new incarnation,
// so its events are never taken for the old tenant's duplicates.
func MsgID(id tenant.ID, incarnation time.Time, seq int64) string {
	return id.String() + "." + strconv.FormatInt(incarnation.UnixMicro(), 10) + "." + strconv.FormatInt(seq, 10)
}
