package sqlite

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
)

// randomNumber returns a JSON number literal; many are long decimals that
// SQLite's own text-to-real conversion rounds differently from Go's.
func randomNumber(r *rand.Rand) string {
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
		}
		if b[0] == '0' && n > 1 {
			b[0] = '1'
		}
		return string(b)
	}
	switch r.IntN(6) {
	case 0:
		return strconv.Itoa(r.IntN(5) - 2)
	case 1:
		return strconv.FormatFloat(r.NormFloat64()*1e6, 'g', -1, 64)
	case 2:
		return strconv.FormatFloat(float64(r.Int64()), 'f', -1, 64) + ".5"
	case 3:
		return digits(1) + "." + digits(1+r.IntN(24)) + "e" + strconv.Itoa(r.IntN(40)-20)
	case 4:
		return digits(16 + r.IntN(6)) // around 2^53 and past int64
	default:
		s := strconv.FormatFloat(r.Float64(), 'g', 17, 64)
		return s[:len(s)-1] + "51"
	}
}

// TestNumberFiltersAgreeWithGoParsing checks numeric equality filters on
// numbers where SQLite's parser and strconv.ParseFloat disagree: the
// backend must follow store.Filter.Matches.
func TestNumberFiltersAgreeWithGoParsing(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	e := storetest.NewEnv(t, open(t, t.TempDir(), Options{}), store.Pooled)
	ctx := e.Tenant(t, "acme")
	var recs []store.Record
	var values []string
	err := e.Router.Tx(ctx, func(tx *store.Tx) error {
		for i := 0; i < 200; i++ {
			n := randomNumber(r)
			values = append(values, n)
			if f, err := strconv.ParseFloat(n, 64); err == nil && i%3 == 0 {
				values = append(values, strconv.FormatFloat(f, 'g', -1, 64)) // the same number, written shortest
			}
			rec, _, err := tx.Put(ctx, "nums", fmt.Sprintf("r%03d", i), []byte(`{"x":`+n+`}`), store.IfMatch{})
			if err != nil {
				return err
			}
			recs = append(recs, rec)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Router.ReadTx(ctx, func(tx *store.Tx) error {
		for _, v := range values {
			f := store.Filter{Field: "x", Value: v}
			var want []string
			for _, rec := range recs {
				if f.Matches(rec.Data) {
					want = append(want, rec.ID)
				}
			}
			page, err := tx.List(ctx, "nums", store.ListOptions{Limit: store.MaxLimit, Filters: []store.Filter{f}})
			if err != nil {
				return err
			}
			var got []string
			for _, rec := range page.Items {
				got = append(got, rec.ID)
			}
			if !slices.Equal(got, want) {
				t.Errorf("x=eq.%s: got %v, want %v", v, got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
