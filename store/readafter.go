package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Read replicas and read-after tokens.
//
// A read-only transaction opened with TxOptions.Replica may be served by a
// read replica of the tenant's shard, if the shard's backend has one
// (ReplicaBackend). A replica is behind its primary, so such a read may
// miss the latest writes, unless the context carries a read-after token
// (WithReadAfter): then the read is served only by a replica that has
// replayed the commit the token names, or by the primary.
//
// A token comes from a committed write transaction (Tx.CommitToken). It is
// opaque and authenticated with a key derived from the router's cursor key,
// and bound to the tenant and the shard: a token that was altered, made by
// another router, for another tenant or for another shard is refused with
// an error wrapping ErrInvalidReadAfter, whatever the transaction's
// options. A token asks only for freshness: it grants no access to
// anything.

// ErrInvalidReadAfter reports a read-after token (WithReadAfter) that is
// malformed, altered, or made for another tenant or shard. The read does
// not run; read again with a token this tenant's write returned, or
// without one.
var ErrInvalidReadAfter = errors.New("invalid read-after token")

// ReplicaBackend is the optional capability of a Backend to serve
// read-only transactions from a read replica of its shard.
type ReplicaBackend interface {
	Backend
	// BeginReplica opens a read-only transaction scoped to the tenant,
	// served by a replica that has replayed position after (0: any
	// replica that is not lagging), or else by the primary. The returned
	// transaction must be confined to the tenant exactly as Begin's.
	BeginReplica(ctx context.Context, id tenant.ID, mode Mode, read ReplicaRead) (BackendTx, error)
}

// ReplicaRead is what a read that opted in to a replica asks of it.
type ReplicaRead struct {
	// After is the position the replica must have replayed (0: none).
	After uint64
	// Age is how long ago the tenant's current incarnation began, by the
	// router's clock, or negative if the router cannot tell (its
	// Placements are not IncarnationStarts). A replica must not serve a
	// tenant whose id was re-created more recently than it can vouch
	// for: it may still hold the rows of the id's previous incarnation.
	Age time.Duration
}

// IncarnationStarts is the optional capability of Placements to say when a
// tenant's current incarnation began (the catalog implements it): a tenant
// id deleted and created again is a new tenant, and a lagging replica may
// still hold the previous one's rows. Without it, no read is served by a
// replica. Return the zero time for an id that is never re-created.
type IncarnationStarts interface {
	IncarnationStart(ctx context.Context, id tenant.ID) (time.Time, error)
}

// CommitPositioner is the optional capability of a BackendTx of a backend
// with replicas: after Commit, CommitPosition returns the shard's position
// (for PostgreSQL, the WAL position) that a replica must have replayed to
// see the transaction's writes. ok is false until the transaction has
// committed, and when the backend has no replica or could not tell (the
// transaction committed all the same).
type CommitPositioner interface {
	CommitPosition() (pos uint64, ok bool)
}

type readAfterKey struct{}

// WithReadAfter returns a context whose read transactions see at least the
// writes of the commit that returned token (Tx.CommitToken). The Router
// checks the token when a transaction begins: see ErrInvalidReadAfter. An
// empty token is no requirement.
func WithReadAfter(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return context.WithValue(ctx, readAfterKey{}, token)
}

// readAfter returns the token in ctx, if any.
func readAfter(ctx context.Context) (string, bool) {
	s, ok := ctx.Value(readAfterKey{}).(string)
	return s, ok
}

// CommitToken returns the read-after token of a committed write
// transaction: a read with WithReadAfter(ctx, token) sees its writes. It is
// "" before Commit, for a read-only transaction, when the router has no
// cursor key, and when the tenant's shard has no replica (every read is
// then served by the primary, which has the writes).
func (tx *Tx) CommitToken() string {
	codec := tx.r.readAfterCodec()
	if !tx.done || tx.readOnly || codec == nil {
		return ""
	}
	cp, ok := tx.btx.(CommitPositioner)
	if !ok {
		return ""
	}
	pos, ok := cp.CommitPosition()
	if !ok {
		return ""
	}
	return codec.encode(tx.tenant, tx.shard, pos)
}

// readAfterCodec returns the router's token codec, keyed from its cursor
// key (nil without one).
func (r *Router) readAfterCodec() *readAfterCodec {
	if r.cursors == nil {
		return nil
	}
	return newReadAfterCodec(r.cursors.key)
}

// readAfterCodec makes and checks read-after tokens.
type readAfterCodec struct{ key []byte }

// readAfterVersion is the first byte of a token's payload.
const readAfterVersion = 1

// maxReadAfterLen bounds the work spent on a hostile token.
const maxReadAfterLen = 512

// newReadAfterCodec derives the token key from the cursor key, so that a
// cursor's MAC never authenticates a token nor the other way round.
func newReadAfterCodec(cursorKey []byte) *readAfterCodec {
	m := hmac.New(sha256.New, cursorKey)
	m.Write([]byte("bulkhead read-after token v1"))
	return &readAfterCodec{key: m.Sum(nil)}
}

func (c *readAfterCodec) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(payload)
	return m.Sum(nil)
}

// payload is version, position (8 bytes, big endian), then the tenant and
// the shard, each after its length in one byte.
func readAfterPayload(t tenant.ID, shard string, pos uint64) []byte {
	ts := t.String()
	p := make([]byte, 0, 1+8+2+len(ts)+len(shard))
	p = append(p, readAfterVersion)
	p = binary.BigEndian.AppendUint64(p, pos)
	p = append(p, byte(len(ts)))
	p = append(p, ts...)
	p = append(p, byte(len(shard)))
	return append(p, shard...)
}

func (c *readAfterCodec) encode(t tenant.ID, shard string, pos uint64) string {
	if len(shard) > 255 {
		return "" // no such shard name in practice; no token rather than a wrong one
	}
	payload := readAfterPayload(t, shard, pos)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(c.mac(payload))
}

// decode checks s for tenant t on shard and returns its position. Every
// failure wraps ErrInvalidReadAfter and names no other tenant.
func (c *readAfterCodec) decode(t tenant.ID, shard, s string) (uint64, error) {
	if len(s) > maxReadAfterLen {
		return 0, fmt.Errorf("%w: too long", ErrInvalidReadAfter)
	}
	// Only the alphabet of the encoding: the base64 decoder would skip a
	// newline, and one token has exactly one spelling.
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return 0, fmt.Errorf("%w: malformed (use the Bulkhead-Commit-Token of a write as it was returned)", ErrInvalidReadAfter)
		}
	}
	p64, m64, ok := strings.Cut(s, ".")
	if !ok {
		return 0, fmt.Errorf("%w: malformed (use the Bulkhead-Commit-Token of a write as it was returned)", ErrInvalidReadAfter)
	}
	payload, err1 := strictB64.DecodeString(p64)
	mac, err2 := strictB64.DecodeString(m64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%w: malformed (use the Bulkhead-Commit-Token of a write as it was returned)", ErrInvalidReadAfter)
	}
	if !hmac.Equal(mac, c.mac(payload)) {
		return 0, fmt.Errorf("%w: signature does not match (a token is valid only as this service returned it)", ErrInvalidReadAfter)
	}
	if len(payload) < 11 || payload[0] != readAfterVersion {
		return 0, fmt.Errorf("%w: malformed", ErrInvalidReadAfter)
	}
	pos := binary.BigEndian.Uint64(payload[1:9])
	rest := payload[9:]
	tn := int(rest[0])
	if len(rest) < 1+tn+1 {
		return 0, fmt.Errorf("%w: malformed", ErrInvalidReadAfter)
	}
	ts, rest := string(rest[1:1+tn]), rest[1+tn:]
	sn := int(rest[0])
	if len(rest) != 1+sn {
		return 0, fmt.Errorf("%w: malformed", ErrInvalidReadAfter)
	}
	if ts != t.String() {
		return 0, fmt.Errorf("%w: made for another tenant", ErrInvalidReadAfter)
	}
	if string(rest[1:]) != shard {
		return 0, fmt.Errorf("%w: made before the tenant moved to another shard (read without it: the move copied every write)", ErrInvalidReadAfter)
	}
	return pos, nil
}

// checkReadAfter returns the position the token in ctx asks for (0 without
// a token), checked for the tenant and shard of sc.
func (r *Router) checkReadAfter(ctx context.Context, sc Scope) (uint64, error) {
	tok, ok := readAfter(ctx)
	if !ok {
		return 0, nil
	}
	codec := r.readAfterCodec()
	if codec == nil {
		return 0, fmt.Errorf("%w: the router has no cursor key, so it makes and accepts no tokens", ErrInvalidReadAfter)
	}
	return codec.decode(sc.Tenant, sc.Placement.Shard, tok)
}

// errReplicaOptions reports TxOptions.Replica on a transaction that may
// write or runs own SQL.
var errReplicaOptions = errors.New("store: TxOptions.Replica needs ReadOnly and no SQL (a replica serves Bulkhead's own reads only)")

// beginRead opens the backend transaction of a read-only transaction that
// opted in to a replica, on the replica if the shard has one.
func (r *Router) beginRead(ctx context.Context, sc Scope, after uint64) (BackendTx, error) {
	rb, ok := sc.backend.(ReplicaBackend)
	if !ok {
		return sc.backend.Begin(ctx, sc.Tenant, sc.Placement.Mode, false)
	}
	read := ReplicaRead{After: after, Age: -1}
	if is, ok := r.placements.(IncarnationStarts); ok {
		start, err := is.IncarnationStart(ctx, sc.Tenant)
		if err != nil {
			return nil, err
		}
		if start.IsZero() {
			read.Age = math.MaxInt64
		} else if read.Age = r.now().Sub(start); read.Age < 0 {
			read.Age = 0
		}
	}
	return rb.BeginReplica(ctx, sc.Tenant, sc.Placement.Mode, read)
}
