// Package receipt makes and checks offboarding receipts: a statement,
// signed by the server with Ed25519, of what a tenant held when it was
// deleted, which export was taken of it and which of its keys were
// destroyed.
//
// The signature covers the canonical JSON of the receipt (Canonical): keys
// sorted, no insignificant whitespace, numbers and strings as
// encoding/json writes them. A receipt file holds that canonical text
// itself, so any change to one of its bytes, or to the signature, fails
// Verify:
//
//	{"receipt":{...},"signature":"<base64 Ed25519>","key_id":"<16 hex>"}
package receipt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Version is the receipt format Sign writes.
const Version = 1

// Errors of Verify and of the parsers, for errors.Is.
var (
	// ErrMalformed: the receipt file, its receipt or its signature is not
	// in the form Sign writes (this includes a receipt that is not in
	// canonical form).
	ErrMalformed = errors.New("malformed receipt")
	// ErrWrongKey: the receipt names another signing key than the one it
	// is checked against.
	ErrWrongKey = errors.New("receipt signed by another key")
	// ErrBadSignature: the signature does not match the receipt: it was
	// changed, or made with another key.
	ErrBadSignature = errors.New("receipt signature does not match")
	// ErrInvalidKey: a public key is not a base64 Ed25519 public key.
	ErrInvalidKey = errors.New("invalid public key")
)

// Receipt is what the server attests about one offboarding.
type Receipt struct {
	Version int    `json:"version"`
	Tenant  string `json:"tenant"`
	// TenantCreatedAt is when the deleted incarnation of the tenant was
	// created, if the catalog knew.
	TenantCreatedAt *time.Time `json:"tenant_created_at,omitempty"`
	DeletedAt       time.Time  `json:"deleted_at"`
	// Collections and Records are the server's count of the tenant's
	// records just before the deletion, per collection and in all.
	Collections map[string]int64 `json:"collections"`
	Records     int64            `json:"records"`
	// Export is the export the operator took, as the operator described
	// it; the server checked that its record count equals Records.
	Export Export `json:"export"`
	// DestroyedKeys are the ids of the tenant's encryption keys destroyed
	// with it (crypto-shredding); empty if it had none.
	DestroyedKeys []string `json:"destroyed_keys"`
}

// Export describes an export file: its SHA-256 (lowercase hex) and its
// number of records (lines).
type Export struct {
	SHA256  string `json:"sha256"`
	Records int64  `json:"records"`
}

// Signed is a receipt file: the canonical receipt, its signature (standard
// base64) and the id of the key that made it (KeyID).
type Signed struct {
	Receipt   json.RawMessage `json:"receipt"`
	Signature string          `json:"signature"`
	KeyID     string          `json:"key_id"`
}

// ValidSHA256 reports whether s is a SHA-256 in lowercase hex.
func ValidSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// KeyID names a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])[:16]
}

// EncodePublicKey returns pub in standard base64, the form
// ParsePublicKey reads.
func EncodePublicKey(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }

// ParsePublicKey reads a standard base64 Ed25519 public key (surrounding
// space ignored).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: want the base64 of a %d-byte Ed25519 public key", ErrInvalidKey, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// Canonical returns the canonical form of the JSON value raw: object keys
// sorted, no insignificant whitespace, strings and numbers as
// encoding/json writes them. Two texts with the same value have the same
// canonical form.
func Canonical(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: more than one JSON value", ErrMalformed)
	}
	return json.Marshal(v) // maps are written with sorted keys
}

// Sign returns r signed with key, in canonical form.
func Sign(key ed25519.PrivateKey, r Receipt) (Signed, error) {
	if r.DestroyedKeys == nil {
		r.DestroyedKeys = []string{}
	}
	if r.Collections == nil {
		r.Collections = map[string]int64{}
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return Signed{}, err
	}
	body, err := Canonical(raw)
	if err != nil {
		return Signed{}, err
	}
	return Signed{
		Receipt:   body,
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, body)),
		KeyID:     KeyID(key.Public().(ed25519.PublicKey)),
	}, nil
}

// Parse reads a receipt file (Signed as JSON, nothing else).
func Parse(file []byte) (Signed, error) {
	var s Signed
	dec := json.NewDecoder(bytes.NewReader(file))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Signed{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Signed{}, fmt.Errorf("%w: more than one JSON value", ErrMalformed)
	}
	if len(s.Receipt) == 0 || s.Signature == "" || s.KeyID == "" {
		return Signed{}, fmt.Errorf("%w: receipt, signature and key_id are required", ErrMalformed)
	}
	return s, nil
}

// Verify checks that s was signed by pub and returns its receipt. It fails
// with ErrWrongKey if s names another key, ErrMalformed if the receipt is
// not in canonical form or the signature is not base64, and
// ErrBadSignature if the signature does not match.
func Verify(pub ed25519.PublicKey, s Signed) (Receipt, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Receipt{}, ErrInvalidKey
	}
	if id := KeyID(pub); s.KeyID != id {
		return Receipt{}, fmt.Errorf("%w: it names key %q, the key given is %s", ErrWrongKey, s.KeyID, id)
	}
	canon, err := Canonical(s.Receipt)
	if err != nil {
		return Receipt{}, err
	}
	if !bytes.Equal(canon, s.Receipt) {
		return Receipt{}, fmt.Errorf("%w: the receipt is not in canonical form (it was edited)", ErrMalformed)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(s.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Receipt{}, fmt.Errorf("%w: the signature is not a base64 Ed25519 signature", ErrMalformed)
	}
	if !ed25519.Verify(pub, s.Receipt, sig) {
		return Receipt{}, ErrBadSignature
	}
	var r Receipt
	if err := json.Unmarshal(s.Receipt, &r); err != nil {
		return Receipt{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return r, nil
}
