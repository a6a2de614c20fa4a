package identity

// SignatureChecks reports how many tokens v has parsed and checked the
// signature of (cache misses that reached the signature check).
func (v *Verifier) SignatureChecks() int64 { return v.cache.verifications.Load() }

// CacheLen reports how many verified tokens v holds.
func (v *Verifier) CacheLen() int { return v.cache.len() }
