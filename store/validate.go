package store

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// MaxDepth is the deepest nesting of objects and arrays a record may have.
const MaxDepth = 64

// ValidCollection reports whether name is a valid collection name.
func ValidCollection(name string) error {
	if len(name) < 1 || len(name) > 63 || name[0] < 'a' || name[0] > 'z' {
		return fmt.Errorf("%w: must match ^[a-z][a-z0-9_]{0,62}$", ErrInvalidCollection)
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("%w: must match ^[a-z][a-z0-9_]{0,62}$", ErrInvalidCollection)
		}
	}
	return nil
}

// ValidRecordID reports whether id is a valid record id.
func ValidRecordID(id string) error {
	if len(id) < 1 || len(id) > 128 {
		return fmt.Errorf("%w: must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ -", ErrInvalidRecordID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '~' || c == '-') {
			return fmt.Errorf("%w: must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ -", ErrInvalidRecordID)
		}
	}
	return nil
}

// NormalizeData checks that data is one JSON object nested at most MaxDepth
// deep, in valid UTF-8, without lone surrogate escapes or duplicate keys
// (which JSON implementations read differently), and returns it compacted.
func NormalizeData(data []byte) (json.RawMessage, error) {
	if !json.Valid(data) {
		return nil, fmt.Errorf("%w: not valid JSON", ErrInvalidData)
	}
	var buf bytes.Buffer
	buf.Grow(len(data))
	if err := json.Compact(&buf, data); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidData, err)
	}
	out := buf.Bytes()
	if len(out) == 0 || out[0] != '{' {
		return nil, fmt.Errorf("%w: must be a JSON object", ErrInvalidData)
	}
	if d := depth(out); d > MaxDepth {
		return nil, fmt.Errorf("%w: nested %d deep, at most %d allowed", ErrInvalidData, d, MaxDepth)
	}
	if err := portable(out); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidData, err)
	}
	if bytes.Contains(out, []byte("sealed")) {
		var obj map[string]json.RawMessage
		if json.Unmarshal(out, &obj) == nil {
			if _, ok := obj[SealedMarker]; ok {
				return nil, fmt.Errorf("%w: the top-level field %q is reserved for encrypted records", ErrInvalidData, SealedMarker)
			}
		}
	}
	return json.RawMessage(out), nil
}

// depth returns the maximum nesting depth of valid, compact JSON.
func depth(b []byte) int {
	d, maxD := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			d++
			if d > maxD {
				maxD = d
			}
		case c == '}' || c == ']':
			d--
		}
	}
	return maxD
}
