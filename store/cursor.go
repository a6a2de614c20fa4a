package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// cursor is the authenticated position of a list: the last id returned,
// bound to the tenant, collection and filter set it was made for.
type cursor struct {
	V      int    `json:"v"`
	Tenant string `json:"t"`
	Coll   string `json:"c"`
	Filter string `json:"f"` // base64 of SHA-256 of the canonical filter set
	After  string `json:"a"`
}

// strictB64 refuses non-canonical encodings, so each cursor has exactly one spelling.
var strictB64 = base64.RawURLEncoding.Strict()

// maxCursorLen bounds the work spent on a hostile cursor.
const maxCursorLen = 1024

// CursorCodec makes and checks opaque list cursors with an HMAC key. A
// cursor made for one tenant, collection or filter set fails to decode for
// any other, and any change to it fails to decode.
type CursorCodec struct{ key []byte }

// NewCursorCodec returns a codec keyed with key (at least 32 bytes).
func NewCursorCodec(key []byte) (*CursorCodec, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("cursor key must be at least 32 bytes, got %d", len(key))
	}
	return &CursorCodec{key: append([]byte(nil), key...)}, nil
}

func filterDigest(fs []Filter) string {
	sum := sha256.Sum256([]byte(canonicalFilters(fs)))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

func (c *CursorCodec) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(payload)
	return m.Sum(nil)
}

// Encode returns the cursor for a page that ended at after.
func (c *CursorCodec) Encode(t tenant.ID, collection string, fs []Filter, after string) string {
	payload, _ := json.Marshal(cursor{V: 1, Tenant: t.String(), Coll: collection, Filter: filterDigest(fs), After: after})
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(c.mac(payload))
}

// Decode checks s and returns the id the next page starts after. Every
// failure wraps ErrInvalidCursor and says nothing about other tenants.
func (c *CursorCodec) Decode(t tenant.ID, collection string, fs []Filter, s string) (string, error) {
	if len(s) > maxCursorLen {
		return "", fmt.Errorf("%w: too long", ErrInvalidCursor)
	}
	p64, m64, ok := strings.Cut(s, ".")
	if !ok || !b64url(p64) || !b64url(m64) {
		return "", fmt.Errorf("%w: malformed", ErrInvalidCursor)
	}
	payload, err1 := strictB64.DecodeString(p64)
	mac, err2 := strictB64.DecodeString(m64)
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("%w: malformed", ErrInvalidCursor)
	}
	if !hmac.Equal(mac, c.mac(payload)) {
		return "", fmt.Errorf("%w: signature does not match", ErrInvalidCursor)
	}
	var cur cursor
	if err := json.Unmarshal(payload, &cur); err != nil || cur.V != 1 {
		return "", fmt.Errorf("%w: malformed", ErrInvalidCursor)
	}
	if cur.Tenant != t.String() || cur.Coll != collection || cur.Filter != filterDigest(fs) {
		return "", fmt.Errorf("%w: made for another list", ErrInvalidCursor)
	}
	if err := ValidRecordID(cur.After); err != nil {
		return "", fmt.Errorf("%w: malformed", ErrInvalidCursor)
	}
	return cur.After, nil
}

// b64url reports whether s holds only the unpadded base64url alphabet.
// The decoders skip '\r' and '\n', which would give a cursor a second
// spelling.
func b64url(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
