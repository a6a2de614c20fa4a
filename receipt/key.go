package receipt

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"

	"github.com/bulkhead-dev/bulkhead/internal/datadir"
)

// LoadKey returns the Ed25519 signing key whose seed is in the file at
// path, creating the file (mode 0600, a fresh random seed) if there is
// none. Keep the file: receipts it signed verify only with its public key.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("make receipt key: %w", err)
	}
	created, err := datadir.WriteOnce(path, seed)
	if err == nil && !created {
		seed, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("receipt key: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("receipt key: %s holds %d bytes, want %d (restore it from a backup)", path, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
