package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// portable reports the first thing in valid, compact JSON that JSON
// implementations read differently, so that a record means the same to
// Filter.Matches, to SQLite's and to PostgreSQL's JSON functions: invalid
// UTF-8 and escaped lone surrogates (Go reads U+FFFD, SQLite keeps the
// bytes, PostgreSQL refuses them), and duplicate object keys (Go keeps the
// last, SQLite the first).
func portable(data []byte) error {
	if !utf8.Valid(data) {
		return errors.New("not valid UTF-8")
	}
	if err := checkSurrogates(data); err != nil {
		return err
	}
	return checkDuplicateKeys(data)
}

// checkSurrogates refuses \uXXXX escapes of a surrogate that is not half of
// a high-low pair, and \u0000, which PostgreSQL's jsonb refuses.
func checkSurrogates(data []byte) error {
	lone := errors.New(`a \u escape of a lone surrogate`)
	hex := func(i int) uint64 {
		v, _ := strconv.ParseUint(string(data[i:i+4]), 16, 16)
		return v
	}
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\':
			i++
			if data[i] != 'u' {
				continue
			}
			r := hex(i + 1)
			i += 4
			switch {
			case r == 0:
				return errors.New(`a \u0000 escape (PostgreSQL's jsonb cannot store NUL characters)`)
			case r >= 0xDC00 && r <= 0xDFFF:
				return lone
			case r >= 0xD800 && r <= 0xDBFF:
				if i+6 >= len(data) || data[i+1] != '\\' || data[i+2] != 'u' {
					return lone
				}
				if lo := hex(i + 3); lo < 0xDC00 || lo > 0xDFFF {
					return lone
				}
				i += 6
			}
		}
	}
	return nil
}

// checkDuplicateKeys refuses an object, at any depth, that has two equal
// keys (after unescaping).
func checkDuplicateKeys(data []byte) error {
	type frame struct {
		keys      map[string]bool // nil for an array
		expectKey bool
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF: data is already known to be valid
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			top := stack[n-1]
			if top.expectKey {
				k, _ := tok.(string)
				if top.keys[k] {
					return fmt.Errorf("duplicate key %q", clip(k))
				}
				top.keys[k] = true
				top.expectKey = false
				continue
			}
			top.expectKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, expectKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		}
	}
}
