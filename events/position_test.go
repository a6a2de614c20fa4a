package events_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/events"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func positions(t testing.TB, fill byte) *events.Positions {
	t.Helper()
	p, err := events.NewPositions(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPositionsRoundTrip(t *testing.T) {
	p := positions(t, 1)
	acme := tenant.MustParse("acme")
	born := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	for _, seq := range []int64{0, 1, 2, 999, 1 << 40} {
		pos := p.Encode(acme, born, seq)
		got, err := p.Decode(pos, acme, born)
		if err != nil || got != seq {
			t.Fatalf("Decode(Encode(%d)) = %d, %v", seq, got, err)
		}
	}
}

func TestPositionsRefuseWhatIsNotTheirs(t *testing.T) {
	p := positions(t, 1)
	acme, globex := tenant.MustParse("acme"), tenant.MustParse("globex")
	born := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	pos := p.Encode(acme, born, 42)
	raw, _ := base64.RawURLEncoding.DecodeString(pos)
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	cases := []struct {
		name string
		pos  string
		id   tenant.ID
		born time.Time
	}{
		{"another tenant's position", pos, globex, born},
		{"a position of the tenant's earlier incarnation", pos, acme, born.Add(time.Microsecond)},
		{"a position of the tenant's later incarnation", p.Encode(acme, born.Add(time.Hour), 42), acme, born},
		{"a position made under another key", positions(t, 2).Encode(acme, born, 42), acme, born},
		{"a position whose seq was changed", flip(8), acme, born},
		{"a position whose mac was changed", flip(20), acme, born},
		{"a position of another version", flip(0), acme, born},
		{"a truncated position", pos[:len(pos)-1], acme, born},
		{"a truncated position padded back", pos[:len(pos)-2] + "AA", acme, born},
		{"an empty position", "", acme, born},
		{"a bare number", "42", acme, born},
		{"a position with control characters", pos[:len(pos)-1] + "\n", acme, born},
		{"a position in standard base64", strings.NewReplacer("-", "+", "_", "/").Replace(pos) + "=", acme, born},
		{"a negative seq, well signed", p.Encode(acme, born, -1), acme, born},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if seq, err := p.Decode(c.pos, c.id, c.born); !errors.Is(err, events.ErrInvalidPosition) {
				t.Fatalf("Decode = %d, %v; want ErrInvalidPosition", seq, err)
			}
		})
	}
}

func TestNewPositionsRefusesShortKeys(t *testing.T) {
	if _, err := events.NewPositions(make([]byte, 31)); err == nil {
		t.Fatal("a 31-byte key was accepted")
	}
}

func FuzzPositionsDecode(f *testing.F) {
	p := positions(f, 1)
	acme := tenant.MustParse("acme")
	f.Add(p.Encode(acme, time.Time{}, 7))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		seq, err := p.Decode(s, acme, time.Time{})
		if err == nil && p.Encode(acme, time.Time{}, seq) != s {
			t.Fatalf("Decode accepted %q, which Encode never makes", s)
		}
	})
}
