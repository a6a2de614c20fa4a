package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// ErrInvalidPosition: an event position is malformed, was changed, was
// made for another tenant or for another incarnation of this one (a
// tenant deleted and created again with the same id), or under another
// key. It is never read as "from the start".
var ErrInvalidPosition = errors.New("invalid event position")

// MinKeyLen is the shortest key NewPositions accepts.
const MinKeyLen = 32

// positionVersion is the first byte of every position: a later format can
// be told apart (and an old position refused) by it.
const positionVersion = 1

// positionLen is the decoded length of a position: the version, the Seq
// (8 bytes, big endian) and the HMAC-SHA256.
const positionLen = 1 + 8 + sha256.Size

// Positions makes and checks the positions of a tenant's events: the SSE
// id a client sends back (Last-Event-ID) to resume after an event. A
// position is opaque and authenticated: an HMAC-SHA256 under the key binds
// its Seq to the tenant and to the start of the tenant's incarnation, so a
// client can neither forge one, nor move one to another tenant, nor use
// one of a deleted tenant with the re-created tenant of the same id. It
// holds no secret and no data beyond the Seq. Positions is safe for
// concurrent use.
type Positions struct {
	key []byte
}

// NewPositions returns the positions made under key, at least MinKeyLen
// random bytes kept secret by the server (every instance serving the same
// tenants needs the same key). The key is copied.
func NewPositions(key []byte) (*Positions, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("event position key: %d bytes, need at least %d random bytes", len(key), MinKeyLen)
	}
	return &Positions{key: append([]byte(nil), key...)}, nil
}

// Encode returns the position of event seq of tenant id in its
// incarnation (the instant the tenant was last created; the zero time if
// the caller keeps no incarnations).
func (p *Positions) Encode(id tenant.ID, incarnation time.Time, seq int64) string {
	var b [positionLen]byte
	b[0] = positionVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(seq))
	copy(b[9:], p.mac(id, incarnation, b[:9]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Decode returns the Seq that position s names for tenant id in its
// incarnation. Anything else — empty, malformed, truncated, changed, made
// for another tenant, incarnation or key — fails with an error wrapping
// ErrInvalidPosition.
func (p *Positions) Decode(s string, id tenant.ID, incarnation time.Time) (int64, error) {
	if len(s) != base64.RawURLEncoding.EncodedLen(positionLen) {
		return 0, fmt.Errorf("%w: a position is %d characters, as the id: of an event sent it", ErrInvalidPosition,
			base64.RawURLEncoding.EncodedLen(positionLen))
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != positionLen || b[0] != positionVersion {
		return 0, fmt.Errorf("%w: it is not a position this server made", ErrInvalidPosition)
	}
	seq := int64(binary.BigEndian.Uint64(b[1:9]))
	if !hmac.Equal(p.mac(id, incarnation, b[:9]), b[9:]) || seq < 0 {
		return 0, fmt.Errorf("%w: it was changed, or made for another tenant or an earlier tenant of the same id; "+
			"start again without a position", ErrInvalidPosition)
	}
	return seq, nil
}

// mac returns the HMAC of head (version and Seq) for the tenant and its
// incarnation. The tenant id is length-prefixed, so no two (tenant,
// incarnation, seq) give the same input.
func (p *Positions) mac(id tenant.ID, incarnation time.Time, head []byte) []byte {
	m := hmac.New(sha256.New, p.key)
	var n [8]byte
	m.Write([]byte("bulkhead event position\x00"))
	m.Write([]byte{byte(len(id.String()))})
	m.Write([]byte(id.String()))
	var at int64
	if !incarnation.IsZero() {
		at = incarnation.UnixMicro()
	}
	binary.BigEndian.PutUint64(n[:], uint64(at))
	m.Write(n[:])
	m.Write(head)
	return m.Sum(nil)
}
