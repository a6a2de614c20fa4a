package analytics

import "io"

// SetRand makes e draw its noise from r: for tests only (a seeded stream
// makes a noisy answer reproducible). Production engines use crypto/rand.
func SetRand(e *Engine, r io.Reader) { e.noise = sampler{r} }
