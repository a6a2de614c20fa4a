package receipt_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/receipt"
)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sample() receipt.Receipt {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return receipt.Receipt{
		Version: receipt.Version, Tenant: "acme", TenantCreatedAt: &created,
		DeletedAt:   time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Collections: map[string]int64{"zeta": 2, "alpha": 1}, Records: 3,
		Export:        receipt.Export{SHA256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03", Records: 3},
		DestroyedKeys: []string{"k2", "k1"},
	}
}

func TestASignedReceiptVerifiesAndReadsBack(t *testing.T) {
	key := newKey(t)
	s, err := receipt.Sign(key, sample())
	if err != nil {
		t.Fatal(err)
	}
	file, _ := json.Marshal(s)
	parsed, err := receipt.Parse(file)
	if err != nil {
		t.Fatal(err)
	}
	got, err := receipt.Verify(key.Public().(ed25519.PublicKey), parsed)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := sample()
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Errorf("read back %s, signed %s", g, w)
	}
	// Canonical: sorted keys, compact.
	if !bytes.Contains(s.Receipt, []byte(`"collections":{"alpha":1,"zeta":2}`)) || bytes.ContainsAny(s.Receipt, " \n") {
		t.Errorf("receipt is not canonical: %s", s.Receipt)
	}
	if s.KeyID != receipt.KeyID(key.Public().(ed25519.PublicKey)) || len(s.KeyID) != 16 {
		t.Errorf("key id %q", s.KeyID)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAnyChangeToAReceiptFailsVerify(t *testing.T) {
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	s, err := receipt.Sign(key, sample())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("every byte of the receipt", func(t *testing.T) {
		for i := range s.Receipt {
			for _, delta := range []byte{1, 0x20} {
				c := s
				c.Receipt = bytes.Clone(s.Receipt)
				c.Receipt[i] ^= delta
				if _, err := receipt.Verify(pub, c); err == nil {
					t.Fatalf("byte %d changed (%q) still verifies", i, c.Receipt)
				}
			}
		}
	})
	t.Run("every character of the signature", func(t *testing.T) {
		for i := range s.Signature {
			b := []byte(s.Signature)
			b[i] ^= 1
			c := s
			c.Signature = string(b)
			if _, err := receipt.Verify(pub, c); err == nil {
				t.Fatalf("signature character %d changed still verifies", i)
			}
		}
	})
	t.Run("the same receipt, reformatted", func(t *testing.T) {
		var buf bytes.Buffer
		_ = json.Indent(&buf, s.Receipt, "", "  ")
		c := s
		c.Receipt = buf.Bytes()
		if _, err := receipt.Verify(pub, c); !errors.Is(err, receipt.ErrMalformed) {
			t.Fatalf("an indented receipt: %v, want ErrMalformed", err)
		}
	})
	t.Run("another key", func(t *testing.T) {
		other := newKey(t).Public().(ed25519.PublicKey)
		if _, err := receipt.Verify(other, s); !errors.Is(err, receipt.ErrWrongKey) {
			t.Fatalf("another key: %v, want ErrWrongKey", err)
		}
		c := s
		c.KeyID = receipt.KeyID(other) // a forged key id does not help
		if _, err := receipt.Verify(other, c); !errors.Is(err, receipt.ErrBadSignature) {
			t.Fatalf("another key with its id: %v, want ErrBadSignature", err)
		}
	})
}

func TestParseRefusesWhatSignDoesNotWrite(t *testing.T) {
	for _, in := range []string{``, `{}`, `[]`, `{"receipt":{},"signature":"x"}`,
		`{"receipt":{},"signature":"x","key_id":"y","extra":1}`, `{"receipt":{},"signature":"x","key_id":"y"} {}`} {
		if _, err := receipt.Parse([]byte(in)); !errors.Is(err, receipt.ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", in, err)
		}
	}
}

func TestPublicKeysAndHashes(t *testing.T) {
	pub := newKey(t).Public().(ed25519.PublicKey)
	got, err := receipt.ParsePublicKey(" " + receipt.EncodePublicKey(pub) + "\n")
	if err != nil || !got.Equal(pub) {
		t.Fatalf("ParsePublicKey(EncodePublicKey) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "abc", receipt.EncodePublicKey(pub[:31])} {
		if _, err := receipt.ParsePublicKey(bad); !errors.Is(err, receipt.ErrInvalidKey) {
			t.Errorf("ParsePublicKey(%q) = %v", bad, err)
		}
	}
	ok := "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	for s, want := range map[string]bool{ok: true, ok[:63]: false, ok + "0": false, "5891B5" + ok[6:]: false, "g" + ok[1:]: false} {
		if receipt.ValidSHA256(s) != want {
			t.Errorf("ValidSHA256(%q) != %v", s, want)
		}
	}
}

func TestLoadKeyCreatesAPrivateKeyOnceAndKeepsIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "receipt.key")
	k1, err := receipt.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	k2, err := receipt.LoadKey(path)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("second load gave another key (%v)", err)
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := receipt.LoadKey(path); err == nil {
		t.Fatal("a key file of the wrong size was accepted")
	}
}
