package keys

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/prf"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// tenantKeys are one tenant's unwrapped keys. They implement
// store.TenantSealer.
type tenantKeys struct {
	m        *Manager
	id       tenant.ID
	aead     tink.AEAD
	dataKeys map[uint32]bool
	primary  uint32
	prfs     *prf.Set
}

var _ store.TenantSealer = (*tenantKeys)(nil)

func newTenantKeys(m *Manager, id tenant.ID, h handles) (*tenantKeys, error) {
	a, err := aead.New(h.data)
	if err != nil {
		return nil, fmt.Errorf("keys: data keyset of %s: %w", id, err)
	}
	p, err := prf.NewPRFSet(h.index)
	if err != nil {
		return nil, fmt.Errorf("keys: index keyset of %s: %w", id, err)
	}
	k := &tenantKeys{m: m, id: id, aead: a, prfs: p, dataKeys: map[uint32]bool{},
		primary: h.data.KeysetInfo().GetPrimaryKeyId()}
	for _, ki := range h.data.KeysetInfo().GetKeyInfo() {
		k.dataKeys[ki.GetKeyId()] = true
	}
	return k, nil
}

// recordAD binds a ciphertext to its tenant, collection and record id.
// None of them can hold a NUL (tenant.Parse, store.ValidCollection,
// store.ValidRecordID), so the encoding is unambiguous.
func recordAD(id tenant.ID, collection, record string) []byte {
	b := make([]byte, 0, 16+len(id.String())+len(collection)+len(record))
	b = append(b, "bulkhead/record/v1\x00"...)
	b = append(b, id.String()...)
	b = append(b, 0)
	b = append(b, collection...)
	b = append(b, 0)
	return append(b, record...)
}

// Seal implements store.TenantSealer.
func (k *tenantKeys) Seal(collection, id string, data []byte) ([]byte, error) {
	return k.aead.Encrypt(data, recordAD(k.id, collection, id))
}

// keyID returns the id of the key that made ciphertext (Tink's 5-byte
// prefix: 0x01 and the key id).
func keyID(ct []byte) (uint32, bool) {
	if len(ct) < 5 || ct[0] != 1 {
		return 0, false
	}
	return binary.BigEndian.Uint32(ct[1:5]), true
}

// Open implements store.TenantSealer. A ciphertext of a key these keys do
// not hold (a rotation by another instance) makes them read the tenant's
// keys again, once.
func (k *tenantKeys) Open(collection, id string, ct []byte) ([]byte, error) {
	pt, err := k.aead.Decrypt(ct, recordAD(k.id, collection, id))
	if err == nil {
		return pt, nil
	}
	if kid, ok := keyID(ct); ok && !k.dataKeys[kid] {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		k.m.Forget(k.id)
		if fresh, ferr := k.m.keys(ctx, k.id); ferr == nil && fresh.dataKeys[kid] {
			if pt, err := fresh.aead.Decrypt(ct, recordAD(k.id, collection, id)); err == nil {
				return pt, nil
			}
		}
	}
	return nil, ErrUndecryptable
}

// Current implements store.TenantSealer.
func (k *tenantKeys) Current(ct []byte) bool {
	kid, ok := keyID(ct)
	return ok && kid == k.primary
}

// tokenLen is the length of an index token's PRF output (128 bits).
const tokenLen = 16

// token is the index token of field = value (kind 's' string, 'n' number
// in canonical form, 'b' boolean) in collection, under one PRF.
func token(p prf.PRF, collection, field string, kind byte, value string) (string, error) {
	in := make([]byte, 0, 8+len(collection)+len(field)+len(value))
	in = append(in, "v1\x00"...)
	in = append(in, collection...)
	in = append(in, 0)
	in = append(in, field...)
	in = append(in, 0, kind)
	in = append(in, value...)
	out, err := p.ComputePRF(in, tokenLen)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// canonNumber is the form in which equal numbers (as store.Filter.Matches
// compares them, parsed as float64) are written alike.
func canonNumber(f float64) string {
	if f == 0 {
		return "0" // and -0
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// scalar returns the kind and token value of a top-level JSON value that a
// filter can match, ok = false for the others (null, objects, arrays,
// numbers out of float64's range).
func scalar(raw json.RawMessage) (kind byte, value string, ok bool) {
	if len(raw) == 0 {
		return 0, "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, "", false
		}
		return 's', s, true
	case 't', 'f':
		return 'b', string(raw), true
	case 'n', '{', '[':
		return 0, "", false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0, "", false
	}
	return 'n', canonNumber(f), true
}

// Index implements store.TenantSealer: one token per top-level field that
// a filter can name and match, sorted (so the order of fields is not kept).
func (k *tenantKeys) Index(collection string, data []byte) ([]string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("keys: index: %w", err)
	}
	p, ok := k.prfs.PRFs[k.prfs.PrimaryID]
	if !ok {
		return nil, errors.New("keys: index keyset has no primary key")
	}
	out := make([]string, 0, len(obj))
	for field, raw := range obj {
		if _, err := store.ParseFilter(field, "eq."); err != nil {
			continue // no filter can name it
		}
		kind, v, ok := scalar(raw)
		if !ok {
			continue
		}
		t, err := token(p, collection, field, kind, v)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return out, nil
}

// Match implements store.TenantSealer: the tokens of every value f
// matches (the string, and the number or boolean it spells), under each
// index key.
func (k *tenantKeys) Match(collection string, f store.Filter) ([]string, error) {
	type cand struct {
		kind  byte
		value string
	}
	cs := []cand{{'s', f.Value}}
	if n, ok := f.Number(); ok {
		cs = append(cs, cand{'n', canonNumber(n)})
	}
	if b, ok := f.Bool(); ok {
		cs = append(cs, cand{'b', strconv.FormatBool(b)})
	}
	var out []string
	for _, p := range k.prfs.PRFs {
		for _, c := range cs {
			t, err := token(p, collection, f.Field, c.kind, c.value)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out, nil
}
