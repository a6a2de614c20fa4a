package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Filter is an equality filter on a top-level field of a record's data:
// the query parameter <field>=eq.<value>.
//
// A record matches when the field is a JSON string equal to Value, a JSON
// number numerically equal to Value, or a JSON boolean whose literal is
// Value ("true" / "false"). Matches is the reference implementation; every
// backend must agree with it (store/storetest checks this).
type Filter struct {
	Field string
	Value string
}

// ParseFilter parses one list filter given as field and expression
// ("eq.<value>"). Fields are 1–64 characters of A-Z a-z 0-9 _ starting
// with a letter or '_'.
func ParseFilter(field, expr string) (Filter, error) {
	if !validField(field) {
		return Filter{}, fmt.Errorf("%w: field %q must be 1 to 64 characters of A-Z a-z 0-9 _, not starting with a digit", ErrInvalidFilter, clip(field))
	}
	value, ok := strings.CutPrefix(expr, "eq.")
	if !ok {
		return Filter{}, fmt.Errorf("%w: %s=%q: only eq.<value> is supported", ErrInvalidFilter, field, clip(expr))
	}
	if len(value) > 1024 {
		return Filter{}, fmt.Errorf("%w: value for %s is longer than 1024 bytes", ErrInvalidFilter, field)
	}
	return Filter{Field: field, Value: value}, nil
}

func validField(f string) bool {
	if len(f) < 1 || len(f) > 64 || f[0] >= '0' && f[0] <= '9' {
		return false
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Path returns the field as an SQLite/PostgreSQL JSON path: $."field".
// The field's alphabet needs no escaping inside the quotes.
func (f Filter) Path() string { return `$."` + f.Field + `"` }

// Number returns Value as a number if it is written as a JSON number.
func (f Filter) Number() (float64, bool) {
	v := f.Value
	if v == "" || !(v[0] == '-' || v[0] >= '0' && v[0] <= '9') || !json.Valid([]byte(v)) {
		return 0, false
	}
	n, err := strconv.ParseFloat(v, 64)
	return n, err == nil
}

// Bool returns Value as a boolean if it is "true" or "false".
func (f Filter) Bool() (bool, bool) {
	switch f.Value {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// Matches reports whether a record's data matches the filter.
func (f Filter) Matches(data json.RawMessage) bool {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return false
	}
	raw, ok := obj[f.Field]
	if !ok || len(raw) == 0 {
		return false
	}
	switch raw[0] {
	case '"':
		var s string
		return json.Unmarshal(raw, &s) == nil && s == f.Value
	case 't', 'f':
		b, ok := f.Bool()
		return ok && bytes.Equal(raw, []byte(strconv.FormatBool(b)))
	case 'n', '{', '[':
		return false
	default:
		want, ok := f.Number()
		if !ok {
			return false
		}
		got, err := strconv.ParseFloat(string(raw), 64)
		return err == nil && got == want
	}
}

// The sealed envelope: a record whose data is encrypted is stored as
//
//	{"$sealed":"v1","n":<length>,"c":"<ciphertext>","i":["<token>",...]}
//
// SealedMarker marks it (any value: the key's presence is what counts),
// SealedLength holds the data's length in the clear (seal.go),
// SealedCipher holds the ciphertext and SealedIndex the keyed index tokens
// of the record's top-level scalar fields, which equality filters match
// without decrypting (Query.Tokens).
const (
	SealedMarker = "$sealed"
	SealedCipher = "c"
	SealedIndex  = "i"
)

// Matches reports whether a record's data matches every filter of the
// query: the reference semantics every backend's List must agree with
// (store/storetest checks this).
//
// With Tokens nil, data must match each of Filters (Filter.Matches). With
// Tokens set, a sealed record (data is an object holding the key
// SealedMarker) matches filter i when its SealedIndex member is an array
// holding, as a JSON string, at least one of Tokens[i]; its other members
// are never compared with the filter, so a filter on a field named like an
// envelope member ("c", "i") does not match an envelope by them. A record
// that is not sealed matches filter i as Filters[i].Matches says. A query
// whose Tokens do not have one entry per filter (CheckTokens) matches
// nothing.
func (q Query) Matches(data json.RawMessage) bool {
	if q.Tokens == nil {
		for _, f := range q.Filters {
			if !f.Matches(data) {
				return false
			}
		}
		return true
	}
	if q.CheckTokens() != nil {
		return false
	}
	index, sealed := EnvelopeIndex(data)
	for i, f := range q.Filters {
		if sealed && !holdsAny(index, q.Tokens[i]) || !sealed && !f.Matches(data) {
			return false
		}
	}
	return true
}

// CheckTokens returns nil if q.Tokens is nil or has one entry per filter,
// and an error wrapping ErrInvalidFilter otherwise. Backends refuse such a
// query rather than guess.
func (q Query) CheckTokens() error {
	if q.Tokens != nil && len(q.Tokens) != len(q.Filters) {
		return fmt.Errorf("%w: %d token sets for %d filters", ErrInvalidFilter, len(q.Tokens), len(q.Filters))
	}
	return nil
}

// EnvelopeIndex reports whether data is a sealed envelope (an object
// holding the key SealedMarker), and if so returns the strings of its
// SealedIndex member: none if that is not an array, and only the elements
// that are strings.
func EnvelopeIndex(data []byte) (index []string, sealed bool) {
	obj, sealed := envelopeMembers(data)
	if !sealed {
		return nil, false
	}
	var elems []json.RawMessage
	if json.Unmarshal(obj[SealedIndex], &elems) != nil {
		return nil, true
	}
	for _, e := range elems {
		var s string
		if len(e) > 0 && e[0] == '"' && json.Unmarshal(e, &s) == nil {
			index = append(index, s)
		}
	}
	return index, true
}

// envelopeMembers returns the top-level members of data if it is a sealed
// envelope: an object holding the key SealedMarker, whatever its value.
func envelopeMembers(data []byte) (map[string]json.RawMessage, bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return nil, false
	}
	_, sealed := obj[SealedMarker]
	return obj, sealed
}

// holdsAny reports whether index holds one of tokens.
func holdsAny(index, tokens []string) bool {
	for _, s := range index {
		if slices.Contains(tokens, s) {
			return true
		}
	}
	return false
}

// canonicalFilters is the filter set in a fixed order, for cursor binding.
func canonicalFilters(fs []Filter) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = strconv.Quote(f.Field) + "=" + strconv.Quote(f.Value)
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}
