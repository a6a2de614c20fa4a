package analytics

import (
	"errors"
	"math/big"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
)

func TestEpsilonOf(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want Epsilon
	}{{1, 1_000_000}, {0.5, 500_000}, {0.1, 100_000}, {0.000001, 1}, {1e6, MaxEpsilon}, {2.123456, 2_123_456}} {
		if got, err := EpsilonOf(c.in); err != nil || got != c.want {
			t.Errorf("EpsilonOf(%g) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []float64{0, -1, 1e-7, 0.1234567, 1e6 + 1} {
		if _, err := EpsilonOf(bad); !errors.Is(err, ErrInvalidEpsilon) {
			t.Errorf("EpsilonOf(%g) = %v, want ErrInvalidEpsilon", bad, err)
		}
	}
	for e, want := range map[Epsilon]string{1_000_000: "1", 500_000: "0.5", 1: "0.000001", 12_340_000: "12.34", 0: "0", -500_000: "-0.5"} {
		if got := e.String(); got != want {
			t.Errorf("%d.String() = %s, want %s", int64(e), got, want)
		}
	}
	var e Epsilon
	if err := e.UnmarshalJSON([]byte("2.5")); err != nil || e != 2_500_000 {
		t.Errorf("UnmarshalJSON(2.5) = %d, %v", e, err)
	}
	if err := e.UnmarshalJSON([]byte(`"1"`)); !errors.Is(err, ErrInvalidEpsilon) {
		t.Errorf("UnmarshalJSON(string) = %v", err)
	}
}

// TestCompile: every bad query is refused with its sentinel; good ones get
// the documented sensitivity.
func TestCompile(t *testing.T) {
	ok := Query{Collection: "orders", Field: "amount", Agg: Sum, Lower: -2, Upper: 10, MaxRecords: 3, Epsilon: 1}
	attrs := []string{AttrTier}
	for name, c := range map[string]struct {
		mut  func(*Query)
		want error
	}{
		"collection":  {func(q *Query) { q.Collection = "Bad-Name" }, store.ErrInvalidCollection},
		"no field":    {func(q *Query) { q.Field = "" }, ErrInvalidField},
		"bad field":   {func(q *Query) { q.Field = "a.b" }, ErrInvalidField},
		"digit field": {func(q *Query) { q.Field = "1a" }, ErrInvalidField},
		"agg":         {func(q *Query) { q.Agg = "avg" }, ErrInvalidAgg},
		"group_by":    {func(q *Query) { q.GroupBy = "name" }, ErrInvalidGroupBy},
		"eps zero":    {func(q *Query) { q.Epsilon = 0 }, ErrInvalidEpsilon},
		"eps neg":     {func(q *Query) { q.Epsilon = -1 }, ErrInvalidEpsilon},
		"bounds":      {func(q *Query) { q.Lower, q.Upper = 5, 4 }, ErrInvalidBounds},
		"huge bound":  {func(q *Query) { q.Upper = 1e13 }, ErrInvalidBounds},
		"decimals":    {func(q *Query) { q.Decimals = 7 }, ErrInvalidBounds},
		"cap":         {func(q *Query) { q.MaxRecords = MaxRecordsLimit + 1 }, ErrInvalidMaxRecords},
		"cap neg":     {func(q *Query) { q.MaxRecords = -1 }, ErrInvalidMaxRecords},
	} {
		q := ok
		c.mut(&q)
		if _, err := compile(q, attrs); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	p, err := compile(ok, attrs)
	if err != nil || p.sens != 30 {
		t.Fatalf("sum: Δ = %d, %v; want 3 records × max(|-2|, |10|) = 30", p.sens, err)
	}
	num, den := p.noiseScale()
	if new(big.Rat).SetFrac(num, den).Cmp(big.NewRat(30, 1)) != 0 {
		t.Fatalf("scale %s/%s, want Δ/ε = 30", num, den)
	}
	p, err = compile(Query{Collection: "orders", Agg: Count, Epsilon: 0.25}, attrs)
	if err != nil || p.sens != DefaultMaxRecords {
		t.Fatalf("count: Δ = %d, %v; want the default cap", p.sens, err)
	}
	if num, den := p.noiseScale(); new(big.Rat).SetFrac(num, den).Cmp(big.NewRat(4*DefaultMaxRecords, 1)) != 0 {
		t.Fatalf("count scale %s/%s, want %d", num, den, 4*DefaultMaxRecords)
	}
}

// TestValue: fields are read as top-level JSON numbers, rounded to the
// grid and clamped; anything else does not contribute to a sum.
func TestValue(t *testing.T) {
	p, err := compile(Query{Collection: "c", Field: "v", Agg: Sum, Lower: -1.5, Upper: 2.25, Decimals: 2, Epsilon: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]int64{
		`{"v": 1}`: 100, `{"v": 1.234}`: 123, `{"v": 1.236e0}`: 124, `{"v": 99}`: 225, `{"v": -7}`: -150,
		`{"v": 1e400}`: 225, `{"v": -1e400}`: -150, `{"v": 1e-400}`: 0,
	} {
		if v, ok := p.value([]byte(in)); !ok || v != want {
			t.Errorf("%s: %d, %v; want %d", in, v, ok, want)
		}
	}
	for _, in := range []string{`{"v": "1"}`, `{"v": null}`, `{"w": 1}`, `{"x": {"v": 1}}`, `{"v": [1]}`, `{"v": true}`, `not json`} {
		if v, ok := p.value([]byte(in)); ok {
			t.Errorf("%s contributes %d to a sum", in, v)
		}
	}
	c, _ := compile(Query{Collection: "c", Field: "v", Agg: Count, Epsilon: 1}, nil)
	for in, want := range map[string]bool{`{"v": "x"}`: true, `{"v": 0}`: true, `{"v": null}`: false, `{"w": 1}`: false} {
		if _, ok := c.value([]byte(in)); ok != want {
			t.Errorf("count %s: counted %v, want %v", in, ok, want)
		}
	}
}

func TestFormatGrid(t *testing.T) {
	for _, c := range []struct {
		v    int64
		d    int
		want string
	}{{12345, 2, "123.45"}, {-5, 2, "-0.05"}, {7, 0, "7"}, {0, 3, "0.000"}, {-100, 1, "-10.0"}} {
		if got := formatGrid(big.NewInt(c.v), c.d, Sum); got != c.want {
			t.Errorf("formatGrid(%d, %d) = %s, want %s", c.v, c.d, got, c.want)
		}
	}
}
