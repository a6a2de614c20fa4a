package analytics

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/store"
)

// Sentinel errors; every refusal of a query wraps one of them (or
// store.ErrInvalidCollection) and spends nothing.
var (
	// ErrInvalidField: the field is not 1–64 characters of A-Z a-z 0-9 _
	// (not starting with a digit), or is missing for a sum.
	ErrInvalidField = errors.New("invalid field")
	// ErrInvalidAgg: the aggregation is not count or sum.
	ErrInvalidAgg = errors.New("invalid aggregation")
	// ErrInvalidGroupBy: the grouping is not "" or a tenant attribute the
	// engine offers (Options.GroupAttributes).
	ErrInvalidGroupBy = errors.New("invalid group_by")
	// ErrInvalidBounds: lower > upper, a bound beyond MaxBound, or
	// decimals outside 0..MaxDecimals.
	ErrInvalidBounds = errors.New("invalid bounds")
	// ErrInvalidEpsilon: ε is not a positive multiple of 0.000001 up to
	// MaxEpsilon.
	ErrInvalidEpsilon = errors.New("invalid epsilon")
	// ErrInvalidMaxRecords: the per-tenant record cap is outside
	// 1..MaxRecordsLimit.
	ErrInvalidMaxRecords = errors.New("invalid max_records_per_tenant")
	// ErrBudgetExhausted: the analyst's remaining budget is smaller than
	// the query's ε (nothing is answered, nothing spent).
	ErrBudgetExhausted = errors.New("privacy budget exhausted")
)

// Agg is an aggregation.
type Agg string

// Aggregations.
const (
	// Count counts records: those with the field present and not null, or
	// every record when no field is named.
	Count Agg = "count"
	// Sum adds up the field's values (top-level JSON numbers; records
	// whose field is missing or not a number are skipped).
	Sum Agg = "sum"
)

// Limits of a query.
const (
	// DefaultMaxRecords is the per-tenant record cap when a query sets
	// none.
	DefaultMaxRecords = 100
	// MaxRecordsLimit bounds the per-tenant record cap.
	MaxRecordsLimit = 10_000
	// MaxDecimals bounds Query.Decimals (the grid is 10^-Decimals).
	MaxDecimals = 6
	// MaxBound bounds |Lower| and |Upper| on the grid (in grid steps).
	MaxBound = 1_000_000_000_000
)

// Query asks for a noisy count or sum of a collection's field over every
// active tenant, grouped by a tenant attribute.
//
// Contribution bounding: each tenant contributes to its one group at most
// MaxRecords records (the first ones in id order). For a sum every value
// is rounded to the grid of 10^-Decimals and clamped to [Lower, Upper]
// there. Adding or removing one tenant (the privacy unit) thus changes one
// group's answer by at most the sensitivity Δ: MaxRecords for a count,
// MaxRecords·max(|Lower|, |Upper|) grid steps for a sum. The noise is
// discrete Laplace of scale Δ/ε, which makes each answer ε-differentially
// private; the groups are disjoint (a tenant is in one), so the whole
// answer costs ε.
type Query struct {
	Collection string `json:"collection"`
	// Field is a top-level field of the records' JSON; optional for a
	// count.
	Field   string `json:"field,omitempty"`
	Agg     Agg    `json:"agg"`
	GroupBy string `json:"group_by,omitempty"`
	// Lower and Upper clamp each value of a sum (ignored by a count).
	Lower float64 `json:"lower,omitempty"`
	Upper float64 `json:"upper,omitempty"`
	// Decimals sets the sum's grid: values are rounded to multiples of
	// 10^-Decimals (0 by default: integers).
	Decimals int `json:"decimals,omitempty"`
	// MaxRecords caps each tenant's records (DefaultMaxRecords if 0).
	MaxRecords int `json:"max_records_per_tenant,omitempty"`
	// Epsilon is the privacy loss the query spends from the analyst's
	// budget (a multiple of 0.000001).
	Epsilon float64 `json:"epsilon"`
}

// plan is a validated query on the grid.
type plan struct {
	q      Query
	eps    Epsilon
	grid   float64 // 10^Decimals
	lo, hi int64   // bounds in grid steps
	cap    int
	sens   int64 // Δ in grid steps (or records)
}

// compile validates q; attrs are the attributes it may group by.
func compile(q Query, attrs []string) (plan, error) {
	p := plan{q: q, cap: q.MaxRecords}
	if err := store.ValidCollection(q.Collection); err != nil {
		return plan{}, err
	}
	if q.Field != "" || q.Agg == Sum {
		if _, err := store.ParseFilter(q.Field, "eq."); err != nil {
			return plan{}, fmt.Errorf("%w: %q must be 1 to 64 characters of A-Z a-z 0-9 _, not starting with a digit (a sum needs one)",
				ErrInvalidField, clip(q.Field))
		}
	}
	if q.Agg != Count && q.Agg != Sum {
		return plan{}, fmt.Errorf("%w %q: use count or sum", ErrInvalidAgg, clip(string(q.Agg)))
	}
	if q.GroupBy != "" && !slices.Contains(attrs, q.GroupBy) {
		return plan{}, fmt.Errorf("%w %q: use one of %q or leave it empty", ErrInvalidGroupBy, clip(q.GroupBy), attrs)
	}
	if p.cap == 0 {
		p.cap = DefaultMaxRecords
	}
	if p.cap < 1 || p.cap > MaxRecordsLimit {
		return plan{}, fmt.Errorf("%w: must be 1 to %d", ErrInvalidMaxRecords, MaxRecordsLimit)
	}
	var err error
	if p.eps, err = EpsilonOf(q.Epsilon); err != nil {
		return plan{}, err
	}
	p.sens = int64(p.cap)
	if q.Agg == Count {
		return p, nil
	}
	if q.Decimals < 0 || q.Decimals > MaxDecimals {
		return plan{}, fmt.Errorf("%w: decimals must be 0 to %d", ErrInvalidBounds, MaxDecimals)
	}
	p.grid = math.Pow10(q.Decimals)
	lo, hi := math.Round(q.Lower*p.grid), math.Round(q.Upper*p.grid)
	if !(math.Abs(lo) <= MaxBound && math.Abs(hi) <= MaxBound) || lo > hi {
		return plan{}, fmt.Errorf("%w: need lower ≤ upper, each at most %d grid steps (10^-decimals) from 0", ErrInvalidBounds, int64(MaxBound))
	}
	p.lo, p.hi = int64(lo), int64(hi)
	p.sens *= max(-p.lo, p.lo, -p.hi, p.hi)
	return p, nil
}

// value returns a record's contribution: 1 for a counted record, the
// clamped value on the grid for a sum; ok is false for a record that does
// not contribute. data is the record's JSON object.
func (p *plan) value(data []byte) (v int64, ok bool) {
	if p.q.Field == "" {
		return 1, true // a count of every record
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return 0, false
	}
	raw, ok := obj[p.q.Field]
	if !ok || string(raw) == "null" {
		return 0, false
	}
	if p.q.Agg == Count {
		return 1, true
	}
	if len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, false // not a number
	}
	// Out of range parses as ±Inf, which clamps like any big value.
	f, _ := strconv.ParseFloat(string(raw), 64)
	g := math.Round(f * p.grid)
	return int64(min(max(g, float64(p.lo)), float64(p.hi))), true
}

// noiseScale returns the noise scale Δ/ε as num/den in grid steps.
func (p *plan) noiseScale() (num, den *big.Int) {
	num = new(big.Int).Mul(big.NewInt(p.sens), big.NewInt(int64(EpsilonUnit)))
	return num, big.NewInt(int64(p.eps))
}

// clip shortens s for an error message (at a rune boundary).
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	cut := 64
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
