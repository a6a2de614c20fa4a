package analytics

import (
	"crypto/rand"
	"io"
	"math/big"
)

// The noise is integer-valued (discrete) Laplace noise sampled exactly,
// following OpenDP and Canonne, Kamath and Steinke, "The Discrete Gaussian
// for Differential Privacy" (NeurIPS 2020; CKS20), Algorithms 1 and 2: only
// uniform integers from the random source and integer arithmetic, no
// floating point. Sampling a continuous Laplace with float64 arithmetic
// (for example -b·ln(U) with a float U) is not differentially private: the
// set of floats it can produce depends on the true answer, and Mironov,
// "On Significance of the Least Significant Bits for Differential
// Privacy" (CCS 2012) shows how the low bits of such an output give the
// true answer away. Answers here are integers (counts, or sums on a
// fixed-point grid) and so is the noise, so no such gap exists.

var (
	bigOne = big.NewInt(1)
	bigTwo = big.NewInt(2)
)

// sampler draws from a source of random bytes: crypto/rand.Reader in
// production, a seeded stream in tests.
type sampler struct{ r io.Reader }

// uniform returns a uniform integer in [0, n), n > 0.
func (s sampler) uniform(n *big.Int) (*big.Int, error) { return rand.Int(s.r, n) }

// bernoulli returns true with probability num/den (0 ≤ num ≤ den, den > 0).
func (s sampler) bernoulli(num, den *big.Int) (bool, error) {
	u, err := s.uniform(den)
	if err != nil {
		return false, err
	}
	return u.Cmp(num) < 0, nil
}

// bernoulliExp returns true with probability exp(-num/den) (num ≥ 0,
// den > 0): CKS20 Algorithm 1.
func (s sampler) bernoulliExp(num, den *big.Int) (bool, error) {
	if num.Cmp(den) <= 0 {
		// γ = num/den in [0, 1]: count k while Bernoulli(γ/k) succeeds;
		// the probability that the count ends odd is exp(-γ).
		k := big.NewInt(1)
		kden := new(big.Int)
		for {
			ok, err := s.bernoulli(num, kden.Mul(den, k))
			if err != nil {
				return false, err
			}
			if !ok {
				return k.Bit(0) == 1, nil
			}
			k.Add(k, bigOne)
		}
	}
	// γ > 1: exp(-γ) = exp(-1)^⌊γ⌋ · exp(-(γ-⌊γ⌋)). Each exp(-1) trial
	// fails with probability 1-1/e, so the loop ends quickly.
	whole, frac := new(big.Int).QuoRem(num, den, new(big.Int))
	for ; whole.Sign() > 0; whole.Sub(whole, bigOne) {
		ok, err := s.bernoulliExp(bigOne, bigOne)
		if err != nil || !ok {
			return false, err
		}
	}
	return s.bernoulliExp(frac, den)
}

// discreteLaplace returns an integer z with probability proportional to
// exp(-|z|·den/num), the discrete Laplace distribution of scale b =
// num/den (num ≥ 0, den > 0; scale 0 returns 0): CKS20 Algorithm 2. Its
// variance is 2e^{-1/b}/(1-e^{-1/b})², close to 2b² for large b.
func (s sampler) discreteLaplace(num, den *big.Int) (*big.Int, error) {
	if num.Sign() == 0 {
		return new(big.Int), nil
	}
	for {
		// X = U + num·V is geometric with parameter 1-exp(-1/num): U
		// uniform in [0, num), accepted with probability exp(-U/num);
		// V geometric with parameter 1-exp(-1).
		u, err := s.uniform(num)
		if err != nil {
			return nil, err
		}
		ok, err := s.bernoulliExp(u, num)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		v := new(big.Int)
		for {
			ok, err := s.bernoulliExp(bigOne, bigOne)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			v.Add(v, bigOne)
		}
		x := v.Mul(v, num)
		x.Add(x, u)
		y := x.Quo(x, den) // ⌊X/den⌋: geometric with parameter 1-exp(-den/num)
		neg, err := s.bernoulli(bigOne, bigTwo)
		if err != nil {
			return nil, err
		}
		if neg && y.Sign() == 0 {
			continue // -0 would count zero twice
		}
		if neg {
			y.Neg(y)
		}
		return y, nil
	}
}
