package analytics

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Epsilon is a privacy loss (ε) in millionths: Epsilon(500_000) is ε = 0.5.
// Budgets and spends are kept as these integers, so adding and comparing
// them is exact, and a query's ε is an exact rational for the noise scale.
type Epsilon int64

// EpsilonUnit is ε = 1.
const EpsilonUnit Epsilon = 1_000_000

// MaxEpsilon bounds a budget and a query's ε (a million: far beyond any
// meaningful privacy, but small enough that sums of them never overflow).
const MaxEpsilon = 1_000_000 * EpsilonUnit

// EpsilonOf returns f as an Epsilon: f must be finite, greater than 0, at
// most MaxEpsilon and a multiple of 0.000001; otherwise the error wraps
// ErrInvalidEpsilon.
func EpsilonOf(f float64) (Epsilon, error) {
	if math.IsNaN(f) || f <= 0 || f > float64(MaxEpsilon/EpsilonUnit) {
		return 0, fmt.Errorf("%w: must be greater than 0 and at most %d", ErrInvalidEpsilon, MaxEpsilon/EpsilonUnit)
	}
	m := math.Round(f * float64(EpsilonUnit))
	if m < 1 || math.Abs(f*float64(EpsilonUnit)-m) > 1e-3 {
		return 0, fmt.Errorf("%w: must be a multiple of 0.000001", ErrInvalidEpsilon)
	}
	return Epsilon(m), nil
}

// Float64 returns e as a number (for display).
func (e Epsilon) Float64() float64 { return float64(e) / float64(EpsilonUnit) }

// String formats e exactly as a decimal, e.g. "0.5".
func (e Epsilon) String() string {
	sign := ""
	if e < 0 {
		sign, e = "-", -e
	}
	s := sign + strconv.FormatInt(int64(e/EpsilonUnit), 10)
	if frac := e % EpsilonUnit; frac != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%06d", frac), "0")
	}
	return s
}

// MarshalJSON writes e as a JSON number (String).
func (e Epsilon) MarshalJSON() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalJSON reads a JSON number with EpsilonOf; 0 is allowed (an
// empty budget), negative values are not.
func (e *Epsilon) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("%w: not a number", ErrInvalidEpsilon)
	}
	if f == 0 {
		*e = 0
		return nil
	}
	v, err := EpsilonOf(f)
	if err != nil {
		return err
	}
	*e = v
	return nil
}
