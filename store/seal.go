package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Encryption at rest.
//
// A Router with a Sealer (Config.Sealer; package keys implements it with
// Tink) stores every record's data as an envelope,
//
//	{"$sealed":"v1","n":<length>,"c":"<base64url ciphertext>","i":["<token>",...]}
//
// where n is the data's length in the clear (what quotas count; the
// ciphertext's length tells it anyway), the ciphertext is the data encrypted under the tenant's key and
// bound to tenant, collection and record id, and the tokens are keyed
// hashes of the data's top-level fields and values (TenantSealer.Index), so
// that equality filters run in the database without decrypting
// (Query.Tokens). Backends store the envelope like any JSON data; nothing
// of the record's fields or values is in it in the clear. Records written
// before encryption was turned on stay readable as they are until Reseal
// encrypts them.

// SealedLength is the envelope's member that holds the data's length in
// the clear (SealedMarker, SealedCipher and SealedIndex are in filter.go).
const SealedLength = "n"

// ErrSealed: a record's envelope does not open under the tenant's keys
// (moved from another row or tenant, tampered with, or sealed under a
// destroyed key). Nothing of it is returned.
var ErrSealed = errors.New("record data does not decrypt")

// Sealer gives each tenant's keys. Package keys implements it.
type Sealer interface {
	// ForTenant returns tenant id's keys (creating them for a tenant that
	// has none yet); it should be cheap (cached).
	ForTenant(ctx context.Context, id tenant.ID) (TenantSealer, error)
}

// TenantSealer encrypts and indexes the records of one tenant.
type TenantSealer interface {
	// Seal encrypts data (compact JSON), bound to the tenant and to the
	// record's collection and id.
	Seal(collection, id string, data []byte) ([]byte, error)
	// Open decrypts what Seal made for the same tenant, collection and id.
	Open(collection, id string, ciphertext []byte) ([]byte, error)
	// Current reports whether ciphertext was made under the tenant's
	// current keys; Reseal re-encrypts the records that were not.
	Current(ciphertext []byte) bool
	// Index returns the tokens of data's top-level string, number and
	// boolean fields under the current index key.
	Index(collection string, data []byte) ([]string, error)
	// Match returns every token that a record matching f may carry, under
	// each of the tenant's index keys (more than one during a rotation).
	Match(collection string, f Filter) ([]string, error)
}

// envelope is the stored form of a sealed record's data.
type envelope struct {
	Version string   `json:"$sealed"`
	Length  int64    `json:"n"`
	Cipher  string   `json:"c"`
	Index   []string `json:"i"`
}

var sealedKey = []byte(`"` + SealedMarker + `"`)

// sealData returns the envelope of data for record collection/id.
func sealData(ts TenantSealer, collection, id string, data []byte) ([]byte, error) {
	ct, err := ts.Seal(collection, id, data)
	if err != nil {
		return nil, fmt.Errorf("store: seal %s/%s: %w", collection, id, err)
	}
	idx, err := ts.Index(collection, data)
	if err != nil {
		return nil, fmt.Errorf("store: index %s/%s: %w", collection, id, err)
	}
	n := base64.RawURLEncoding.EncodedLen(len(ct))
	out := make([]byte, 0, 40+n+len(idx)*26)
	out = append(out, `{"$sealed":"v1","n":`...)
	out = strconv.AppendInt(out, int64(len(data)), 10)
	out = append(out, `,"c":"`...)
	out = base64.RawURLEncoding.AppendEncode(out, ct)
	out = append(out, `","i":[`...)
	for i, t := range idx {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, t...) // tokens are base64url: nothing to escape
		out = append(out, '"')
	}
	return append(out, "]}"...), nil
}

// parseSealed returns the ciphertext of stored data if it is an envelope
// (sealed), or sealed = false for data stored in the clear.
func parseSealed(data []byte) (ct []byte, sealed bool, err error) {
	e, sealed := parseEnvelope(data)
	if !sealed {
		return nil, false, nil
	}
	if e.Version != "v1" {
		return nil, true, fmt.Errorf("%w: unknown envelope version %q", ErrSealed, e.Version)
	}
	ct, err = base64.RawURLEncoding.DecodeString(e.Cipher)
	if err != nil {
		return nil, true, fmt.Errorf("%w: ciphertext is not base64url", ErrSealed)
	}
	return ct, true, nil
}

// parseEnvelope returns the envelope of stored data, sealed = false for
// data stored in the clear.
//
// As for the backends' filters (Query.Matches), an object is sealed when
// it holds the key SealedMarker at the top, whatever its value; Put and
// Create refuse data that does.
func parseEnvelope(data []byte) (e envelope, sealed bool) {
	if e, ok := parseOwnEnvelope(data); ok {
		return e, true
	}
	if !bytes.Contains(data, sealedKey) {
		return envelope{}, false
	}
	obj, sealed := envelopeMembers(data)
	if !sealed {
		return envelope{}, false // the key is nested: plain data
	}
	_ = json.Unmarshal(obj[SealedMarker], &e.Version)
	_ = json.Unmarshal(obj[SealedLength], &e.Length)
	_ = json.Unmarshal(obj[SealedCipher], &e.Cipher)
	return e, true
}

// ownPrefix is how sealData begins every envelope.
var ownPrefix = []byte(`{"$sealed":"v1","n":`)

// parseOwnEnvelope reads an envelope in exactly the layout sealData
// writes, without a JSON decoder (ok = false for anything else, which
// parseEnvelope then reads the slow way): the version, "n", the
// ciphertext in base64url (no character of which needs escaping) and the
// index.
func parseOwnEnvelope(data []byte) (e envelope, ok bool) {
	rest, found := bytes.CutPrefix(data, ownPrefix)
	if !found {
		return envelope{}, false
	}
	i := bytes.IndexByte(rest, ',')
	if i < 0 {
		return envelope{}, false
	}
	n, err := strconv.ParseInt(string(rest[:i]), 10, 64)
	if err != nil || n < 0 {
		return envelope{}, false
	}
	rest, found = bytes.CutPrefix(rest[i:], []byte(`,"c":"`))
	if !found {
		return envelope{}, false
	}
	j := bytes.IndexByte(rest, '"')
	if j < 0 || !bytes.HasPrefix(rest[j:], []byte(`","i":[`)) || !bytes.HasSuffix(rest, []byte("]}")) {
		return envelope{}, false
	}
	return envelope{Version: "v1", Length: n, Cipher: string(rest[:j])}, true
}

// plainSize is the length in the clear of stored data: what quotas count.
func plainSize(data []byte) int64 {
	if e, sealed := parseEnvelope(data); sealed {
		return e.Length
	}
	return int64(len(data))
}

// open returns rec with its data decrypted, if it was sealed.
func (tx *Tx) open(rec Record) (Record, error) {
	ct, sealed, err := parseSealed(rec.Data)
	if err != nil {
		return Record{}, fmt.Errorf("%s/%s: %w", rec.Collection, rec.ID, err)
	}
	if !sealed {
		return rec, nil
	}
	if tx.seal == nil {
		return Record{}, fmt.Errorf("%s/%s: %w: the router has no sealer (Config.Sealer)", rec.Collection, rec.ID, ErrSealed)
	}
	pt, err := tx.seal.Open(rec.Collection, rec.ID, ct)
	if err != nil {
		return Record{}, fmt.Errorf("%s/%s: %w: %w", rec.Collection, rec.ID, ErrSealed, err)
	}
	rec.Data = pt
	return rec, nil
}

// stored returns what to store for data: its envelope, or data itself on a
// router without a sealer.
func (tx *Tx) stored(collection, id string, data []byte) ([]byte, error) {
	if tx.seal == nil {
		return data, nil
	}
	return sealData(tx.seal, collection, id, data)
}

// tokens returns Query.Tokens for filters, nil without a sealer.
func (tx *Tx) tokens(collection string, filters []Filter) ([][]string, error) {
	if tx.seal == nil || len(filters) == 0 {
		return nil, nil
	}
	out := make([][]string, len(filters))
	for i, f := range filters {
		t, err := tx.seal.Match(collection, f)
		if err != nil {
			return nil, fmt.Errorf("store: filter tokens: %w", err)
		}
		if t == nil {
			t = []string{}
		}
		out[i] = t
	}
	return out, nil
}

// ResealResult is what one Reseal call did.
type ResealResult struct {
	Scanned, Resealed int
	// Next is the id to pass as after to continue; "" when the collection
	// is done.
	Next string
}

// Reseal re-encrypts, in the tenant's transaction, up to max records of
// collection whose id sorts after after and whose data is stored in the
// clear or under keys that are no longer current (after a rotation),
// keeping their versions and times. It is how records written before
// encryption, or before a key rotation, come under the current keys.
// Usage does not change: it counts the data in the clear.
func (tx *Tx) Reseal(ctx context.Context, collection, after string, max int) (ResealResult, error) {
	if err := tx.checkWrite(ctx); err != nil {
		return ResealResult{}, err
	}
	if err := ValidCollection(collection); err != nil {
		return ResealResult{}, err
	}
	if tx.seal == nil {
		return ResealResult{}, fmt.Errorf("store: reseal: the router has no sealer (Config.Sealer)")
	}
	recs, err := tx.btx.List(ctx, Query{Collection: collection, After: after, Limit: max})
	if err != nil {
		return ResealResult{}, err
	}
	var res ResealResult
	for _, rec := range recs {
		res.Scanned++
		ct, sealed, err := parseSealed(rec.Data)
		if err != nil {
			return res, fmt.Errorf("%s/%s: %w", rec.Collection, rec.ID, err)
		}
		if sealed && tx.seal.Current(ct) {
			continue
		}
		plain := rec.Data
		if sealed {
			if plain, err = tx.seal.Open(rec.Collection, rec.ID, ct); err != nil {
				return res, fmt.Errorf("%s/%s: %w: %w", rec.Collection, rec.ID, ErrSealed, err)
			}
		}
		data, err := tx.stored(rec.Collection, rec.ID, plain)
		if err != nil {
			return res, err
		}
		next := rec
		next.Data = data
		if err := tx.btx.Update(ctx, next, rec.Version); err != nil {
			return res, err
		}
		res.Resealed++
	}
	if len(recs) == max {
		res.Next = recs[len(recs)-1].ID
	}
	return res, nil
}
