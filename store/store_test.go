package store_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

var key = bytes.Repeat([]byte{7}, 32)

func codec(t testing.TB) *store.CursorCodec {
	c, err := store.NewCursorCodec(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCursorBinding(t *testing.T) {
	c := codec(t)
	a, b := tenant.MustParse("acme"), tenant.MustParse("globex")
	fs := []store.Filter{{Field: "status", Value: "open"}}
	cur := c.Encode(a, "invoices", fs, "inv-9")
	if after, err := c.Decode(a, "invoices", fs, cur); err != nil || after != "inv-9" {
		t.Fatalf("round trip = %q, %v", after, err)
	}
	// Filter order does not matter; its content does.
	two := []store.Filter{{Field: "a", Value: "1"}, {Field: "b", Value: "2"}}
	if _, err := c.Decode(a, "invoices", []store.Filter{two[1], two[0]}, c.Encode(a, "invoices", two, "x")); err != nil {
		t.Fatalf("reordered filters: %v", err)
	}
	other, _ := store.NewCursorCodec(bytes.Repeat([]byte{8}, 32))
	cases := []struct {
		name   string
		decode func() error
	}{
		{"another tenant", func() error { _, err := c.Decode(b, "invoices", fs, cur); return err }},
		{"another collection", func() error { _, err := c.Decode(a, "orders", fs, cur); return err }},
		{"another filter", func() error {
			_, err := c.Decode(a, "invoices", []store.Filter{{Field: "status", Value: "paid"}}, cur)
			return err
		}},
		{"no filter", func() error { _, err := c.Decode(a, "invoices", nil, cur); return err }},
		{"another server key", func() error { _, err := other.Decode(a, "invoices", fs, cur); return err }},
		{"a flipped byte", func() error { _, err := c.Decode(a, "invoices", fs, flip(cur, 5)); return err }},
		{"a flipped mac byte", func() error { _, err := c.Decode(a, "invoices", fs, flip(cur, len(cur)-3)); return err }},
		{"no mac", func() error { _, err := c.Decode(a, "invoices", fs, strings.Split(cur, ".")[0]); return err }},
		{"garbage", func() error { _, err := c.Decode(a, "invoices", fs, "!!!"); return err }},
		{"a forged payload", func() error {
			p := base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"t":"globex","c":"invoices","f":"","a":"x"}`))
			_, err := c.Decode(b, "invoices", nil, p+"."+strings.Split(cur, ".")[1])
			return err
		}},
		// Go's base64 decoders skip '\r' and '\n': a cursor must still have
		// one spelling.
		{"a leading newline", func() error { _, err := c.Decode(a, "invoices", fs, "\n"+cur); return err }},
		{"a newline inside", func() error { _, err := c.Decode(a, "invoices", fs, cur[:4]+"\r\n"+cur[4:]); return err }},
		{"a newline in the mac", func() error {
			_, err := c.Decode(a, "invoices", fs, cur[:len(cur)-2]+"\n"+cur[len(cur)-2:])
			return err
		}},
		{"a huge cursor", func() error { _, err := c.Decode(a, "invoices", fs, strings.Repeat("a", 5000)); return err }},
	}
	for _, tc := range cases {
		t.Run("is refused for "+tc.name, func(t *testing.T) {
			if err := tc.decode(); !errors.Is(err, store.ErrInvalidCursor) {
				t.Fatalf("err = %v, want ErrInvalidCursor", err)
			}
		})
	}
	if _, err := store.NewCursorCodec([]byte("short")); err == nil {
		t.Fatal("a short key was accepted")
	}
}

func flip(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestValidation(t *testing.T) {
	for _, c := range []string{"a", "invoices", "a_1", "z" + strings.Repeat("9", 62)} {
		if err := store.ValidCollection(c); err != nil {
			t.Errorf("collection %q refused: %v", c, err)
		}
	}
	for _, c := range []string{"", "A", "1a", "_a", "a-b", "a.b", "a" + strings.Repeat("b", 63), "ä"} {
		if err := store.ValidCollection(c); !errors.Is(err, store.ErrInvalidCollection) {
			t.Errorf("collection %q accepted: %v", c, err)
		}
	}
	for _, id := range []string{"a", "A.b_c~d-e", strings.Repeat("x", 128)} {
		if err := store.ValidRecordID(id); err != nil {
			t.Errorf("record id %q refused: %v", id, err)
		}
	}
	for _, id := range []string{"", "a/b", "a b", "a%2f", strings.Repeat("x", 129), "é"} {
		if err := store.ValidRecordID(id); !errors.Is(err, store.ErrInvalidRecordID) {
			t.Errorf("record id %q accepted: %v", id, err)
		}
	}
}

func TestNormalizeData(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 64) + "1" + strings.Repeat("}", 64)
	tooDeep := strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65)
	deepArray := `{"a":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + "}"
	cases := []struct {
		name, in string
		ok       bool
	}{
		{"an object", `{ "a" : 1 }`, true},
		{"an empty object", `{}`, true},
		{"64 levels", deep, true},
		{"braces inside strings", `{"a":"{{{{[[[["}`, true},
		{"65 levels", tooDeep, false},
		{"65 levels with arrays", deepArray, false},
		{"an array", `[1]`, false},
		{"a string", `"x"`, false},
		{"null", `null`, false},
		{"malformed JSON", `{"a":`, false},
		{"two values", `{} {}`, false},
		{"nothing", ``, false},
		{"an escaped NUL", `{"a":"x\u0000y"}`, false},
		{"the envelope's reserved field", `{"$sealed":"v1","c":"x"}`, false},
		{"the reserved field escaped", `{"\u0024sealed":null}`, false},
		{"the reserved field nested", `{"a":{"$sealed":1}}`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := store.NormalizeData([]byte(tc.in))
			if tc.ok != (err == nil) {
				t.Fatalf("NormalizeData(%.40q) = %v", tc.in, err)
			}
			if err != nil && !errors.Is(err, store.ErrInvalidData) {
				t.Fatalf("error %v does not wrap ErrInvalidData", err)
			}
			if err == nil && bytes.ContainsAny(out, " \n") && !strings.Contains(tc.in, `" "`) {
				t.Fatalf("not compacted: %s", out)
			}
		})
	}
}

func TestFilterMatches(t *testing.T) {
	data := json.RawMessage(`{"s":"open","n":1,"f":1.5,"b":true,"z":null,"o":{"s":"open"},"u":"ünï","e":""}`)
	cases := []struct {
		field, value string
		want         bool
	}{
		{"s", "open", true},
		{"s", "Open", false},
		{"n", "1", true},
		{"n", "1.0", true},
		{"n", "1e0", true},
		{"n", "01", false}, // not a JSON number, and n is not a string
		{"f", "1.5", true},
		{"b", "true", true},
		{"b", "false", false},
		{"b", "1", false},
		{"z", "null", false},
		{"o", `{"s":"open"}`, false},
		{"missing", "open", false},
		{"u", "ünï", true},
		{"e", "", true},
	}
	for _, tc := range cases {
		f, err := store.ParseFilter(tc.field, "eq."+tc.value)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Matches(data); got != tc.want {
			t.Errorf("%s=eq.%s matches = %v, want %v", tc.field, tc.value, got, tc.want)
		}
	}
}

func TestParseFilterRefusesBadInput(t *testing.T) {
	for _, tc := range [][2]string{
		{"status", "open"},     // no operator
		{"status", "neq.open"}, // unsupported operator
		{"1status", "eq.x"},    // field starts with a digit
		{"a.b", "eq.x"},        // nested path
		{`a"b`, "eq.x"},        // quote in field
		{"", "eq.x"},           // empty field
		{strings.Repeat("a", 65), "eq.x"},
		{"a", "eq." + strings.Repeat("v", 1025)},
	} {
		if _, err := store.ParseFilter(tc[0], tc[1]); !errors.Is(err, store.ErrInvalidFilter) {
			t.Errorf("ParseFilter(%q, %q) = %v, want ErrInvalidFilter", tc[0], tc[1], err)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []string{"pooled", "schema", "database"} {
		if _, err := store.ParseMode(m); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	if _, err := store.ParseMode("shared"); !errors.Is(err, store.ErrInvalidIsolation) {
		t.Errorf("shared: %v", err)
	}
}

// FuzzCursorDecode: no input makes Decode panic or accept a cursor the
// codec did not make for exactly this tenant, collection and filter.
func FuzzCursorDecode(f *testing.F) {
	c := codec(f)
	a := tenant.MustParse("acme")
	good := c.Encode(a, "c", nil, "x")
	f.Add(good)
	f.Add("")
	f.Add(".")
	f.Add(flip(good, 3))
	f.Fuzz(func(t *testing.T, s string) {
		after, err := c.Decode(a, "c", nil, s)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidCursor) {
				t.Fatalf("error %v does not wrap ErrInvalidCursor", err)
			}
			return
		}
		if c.Encode(a, "c", nil, after) != s {
			t.Fatalf("accepted a cursor the codec did not make: %q", s)
		}
		if err := store.ValidRecordID(after); err != nil {
			t.Fatalf("decoded an invalid position %q", after)
		}
	})
}

// FuzzParseFilter: parsed filters are safe to embed as JSON paths and
// Matches never panics.
func FuzzParseFilter(f *testing.F) {
	f.Add("status", "eq.open", `{"status":"open"}`)
	f.Add("n", "eq.1e3", `{"n":1000}`)
	f.Add("a.b", "eq.x", `{}`)
	f.Add(`a"`, "neq.1", `[]`)
	f.Fuzz(func(t *testing.T, field, expr, data string) {
		flt, err := store.ParseFilter(field, expr)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidFilter) {
				t.Fatalf("error %v does not wrap ErrInvalidFilter", err)
			}
			return
		}
		if strings.ContainsAny(flt.Field, `."[]$\' `) || len(flt.Field) == 0 {
			t.Fatalf("unsafe field %q accepted", flt.Field)
		}
		if !strings.HasPrefix(expr, "eq.") || flt.Value != expr[3:] {
			t.Fatalf("value %q from %q", flt.Value, expr)
		}
		flt.Matches(json.RawMessage(data))
	})
}
