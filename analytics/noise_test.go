package analytics

import (
	"context"
	crand "crypto/rand"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
)

func seeded(seed byte) sampler { return sampler{rand.NewChaCha8([32]byte{seed})} }

// TestBernoulliExp: the exact exp(-γ) coin lands heads at rate exp(-γ),
// for γ below, at and above 1.
func TestBernoulliExp(t *testing.T) {
	s := seeded(1)
	const n = 40_000
	for _, g := range [][2]int64{{0, 1}, {3, 10}, {1, 1}, {27, 10}, {5, 1}} {
		heads := 0
		for range n {
			ok, err := s.bernoulliExp(big.NewInt(g[0]), big.NewInt(g[1]))
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				heads++
			}
		}
		p := math.Exp(-float64(g[0]) / float64(g[1]))
		sd := math.Sqrt(p * (1 - p) / n)
		if got := float64(heads) / n; math.Abs(got-p) > 5*sd+1e-9 {
			t.Errorf("γ = %d/%d: rate %.4f, want %.4f ± %.4f", g[0], g[1], got, p, 5*sd)
		}
	}
}

// TestDiscreteLaplaceDistribution checks the sampler's mean (0), variance
// (2e^{-1/b}/(1-e^{-1/b})², about 2b²), mass at zero and symmetry over
// many samples, with loose bounds, for integer and fractional scales.
func TestDiscreteLaplaceDistribution(t *testing.T) {
	const n = 60_000
	for i, sc := range [][2]int64{{1, 2}, {3, 1}, {5, 2}, {20, 1}} {
		s := seeded(byte(10 + i))
		b := float64(sc[0]) / float64(sc[1])
		q := math.Exp(-1 / b)
		wantVar := 2 * q / ((1 - q) * (1 - q))
		wantZero := (1 - q) / (1 + q)
		var sum, sumSq float64
		zeros, pos, neg := 0, 0, 0
		for range n {
			z, err := s.discreteLaplace(big.NewInt(sc[0]), big.NewInt(sc[1]))
			if err != nil {
				t.Fatal(err)
			}
			v := float64(z.Int64())
			sum += v
			sumSq += v * v
			switch {
			case v == 0:
				zeros++
			case v > 0:
				pos++
			default:
				neg++
			}
		}
		mean, variance := sum/n, sumSq/n-(sum/n)*(sum/n)
		if tol := 5 * math.Sqrt(wantVar/n); math.Abs(mean) > tol {
			t.Errorf("b = %g: mean %.4f, want 0 ± %.4f", b, mean, tol)
		}
		if math.Abs(variance-wantVar) > 0.06*wantVar {
			t.Errorf("b = %g: variance %.3f, want %.3f (2b² = %.3f) ± 6%%", b, variance, wantVar, 2*b*b)
		}
		if got := float64(zeros) / n; math.Abs(got-wantZero) > 5*math.Sqrt(wantZero*(1-wantZero)/n) {
			t.Errorf("b = %g: P(0) = %.4f, want %.4f", b, got, wantZero)
		}
		if d := math.Abs(float64(pos - neg)); d > 5*math.Sqrt(float64(pos+neg)) {
			t.Errorf("b = %g: %d positive and %d negative samples: not symmetric", b, pos, neg)
		}
	}
}

// TestDiscreteLaplaceZeroScale: no sensitivity, no noise.
func TestDiscreteLaplaceZeroScale(t *testing.T) {
	z, err := seeded(2).discreteLaplace(new(big.Int), big.NewInt(7))
	if err != nil || z.Sign() != 0 {
		t.Fatalf("scale 0: %v, %v", z, err)
	}
}

// failing is a random source that breaks.
type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("entropy gone") }

// TestNoiseSourceFailure: a broken random source is an error, never a
// noiseless answer.
func TestNoiseSourceFailure(t *testing.T) {
	if _, err := (sampler{failing{}}).discreteLaplace(big.NewInt(3), big.NewInt(1)); err == nil {
		t.Fatal("no error from a failing random source")
	}
}

// TestProductionNoiseIsCryptoRand: New draws from crypto/rand.
func TestProductionNoiseIsCryptoRand(t *testing.T) {
	e, err := New(Options{Tenants: nopTenants{}, Budget: nopBudget{}, Store: nopReader{}})
	if err != nil {
		t.Fatal(err)
	}
	if e.noise.r != crand.Reader {
		t.Fatal("the engine's noise does not come from crypto/rand.Reader")
	}
}

// The engine's collaborators, unused: New only checks they are set.
type (
	nopTenants struct{}
	nopBudget  struct{}
	nopReader  struct{}
)

func (nopTenants) ActiveTenants(context.Context, func(Member) error) error { return nil }
func (nopBudget) SpendBudget(context.Context, string, Epsilon) (Epsilon, error) {
	return 0, nil
}
func (nopReader) ReadTx(context.Context, func(*store.Tx) error) error { return nil }
