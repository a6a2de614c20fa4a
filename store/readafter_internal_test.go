package store

import (
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// FuzzReadAfterToken: decoding never panics, and accepts a token only if
// it is exactly the one the codec made for this tenant and shard.
func FuzzReadAfterToken(f *testing.F) {
	c := newReadAfterCodec([]byte(strings.Repeat("k", 32)))
	acme := tenant.MustParse("acme")
	good := c.encode(acme, "main", 0x16b374d848)
	f.Add(good)
	f.Add(good[:len(good)-2])
	f.Add("\n" + good)
	f.Add(c.encode(tenant.MustParse("globex"), "main", 1))
	f.Add(c.encode(acme, "eu", 1))
	f.Add("AQ.AQ")
	f.Fuzz(func(t *testing.T, s string) {
		pos, err := c.decode(acme, "main", s)
		if err == nil && s != good {
			if c.encode(acme, "main", pos) != s {
				t.Fatalf("accepted %q, which the codec did not make", s)
			}
		}
		if s == good && (err != nil || pos != 0x16b374d848) {
			t.Fatalf("refused its own token: %v", err)
		}
	})
}
