package store_test

import (
	"errors"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
)

func TestNormalizeDataRefusesWhatJSONImplementationsReadDifferently(t *testing.T) {
	cases := []struct {
		name, in string
		ok       bool
	}{
		{"nested objects reusing keys at other levels", `{"a":1,"b":{"a":2,"c":[{"a":1},{"a":2}]}}`, true},
		{"a surrogate pair and an escaped backslash before u", `{"s":"\ud83d\ude00 é \\ud800","t":"\u00e9"}`, true},
		{"an escaped key next to different keys", `{"a\u0062":1,"a":2}`, true},
		{"arrays of objects", `{"a":[1,2,{"b":[]}],"b":{}}`, true},
		{"a duplicate key", `{"a":1,"a":2}`, false},
		{"a duplicate key in a nested object", `{"a":{"x":1,"x":2}}`, false},
		{"a duplicate key after a nested value", `{"a":[{"x":1,"y":{"x":3},"x":2}]}`, false},
		{"a duplicate key spelled with an escape", `{"a\u0062":1,"ab":2}`, false},
		{"a lone high surrogate", `{"s":"\ud800"}`, false},
		{"a lone low surrogate", `{"s":"\udc00x"}`, false},
		{"a high surrogate before a non-surrogate", `{"s":"\ud800\u0041"}`, false},
		{"a lone surrogate in a key", `{"\udbff":1}`, false},
		{"invalid UTF-8", "{\"s\":\"\xff\"}", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.NormalizeData([]byte(tc.in))
			if tc.ok != (err == nil) {
				t.Fatalf("NormalizeData(%q) = %v", tc.in, err)
			}
			if err != nil && !errors.Is(err, store.ErrInvalidData) {
				t.Fatalf("error %v does not wrap ErrInvalidData", err)
			}
		})
	}
}
