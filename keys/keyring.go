package keys

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/core/registry"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// KeyringScheme is the scheme of a FileKeyring's key URI:
// "bulkhead-keyring://<absolute path>".
const KeyringScheme = "bulkhead-keyring://"

// FileKeyring is the default key-encryption key (KEK): a Tink keyset of
// AES-256-GCM keys in a file of its own, outside every database, mode 0600.
// It implements Tink's registry.KMSClient, the interface a cloud KMS client
// (AWS KMS, GCP KMS, Vault) implements too, so a Manager works with either.
//
// The file holds the KEK in the clear: whoever reads it and a copy of the
// wrapped tenant keysets can read every tenant. Keep it off the backups of
// the databases (see docs/encryption.md), or use a KMS.
//
// Rotate adds a new primary key (new wraps use it, old ones still open);
// after Manager.Rewrap has rewrapped every tenant keyset, Retire destroys
// the older keys, and with them every copy of the wrapped keysets made
// before the rotation (crypto-shredding for backups of the key store).
type FileKeyring struct {
	path string
	mu   sync.RWMutex // guards the fields below
	h    *keyset.Handle
	a    tink.AEAD
}

var _ registry.KMSClient = (*FileKeyring)(nil)

// OpenKeyring opens the keyring at path, creating it (0600, with one
// AES-256-GCM key) if it does not exist. An existing file readable by
// others is refused.
func OpenKeyring(path string) (*FileKeyring, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("keys: keyring %s: %w", path, err)
	}
	k := &FileKeyring{path: abs}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
		if err != nil {
			return nil, fmt.Errorf("keys: new keyring: %w", err)
		}
		if err := k.write(h, true); err != nil {
			return nil, err
		}
		return k, k.load(h)
	case err != nil:
		return nil, fmt.Errorf("keys: keyring %s: %w", abs, err)
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("keys: keyring %s is readable by others (mode %04o): run chmod 600 %s", abs, fi.Mode().Perm(), abs)
	}
	raw, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("keys: keyring %s: %w", abs, err)
	}
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, fmt.Errorf("keys: keyring %s is not a Tink keyset: %w", abs, err)
	}
	return k, k.load(h)
}

func (k *FileKeyring) load(h *keyset.Handle) error {
	a, err := aead.New(h)
	if err != nil {
		return fmt.Errorf("keys: keyring %s: %w", k.path, err)
	}
	k.mu.Lock()
	k.h, k.a = h, a
	k.mu.Unlock()
	return nil
}

// write stores h in the keyring file atomically (a 0600 temporary file
// renamed over it); create refuses to replace an existing file.
func (k *FileKeyring) write(h *keyset.Handle, create bool) error {
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return fmt.Errorf("keys: keyring: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(k.path), ".keyring-*")
	if err != nil {
		return fmt.Errorf("keys: keyring: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.Write(buf.Bytes())
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil && create {
			err = os.Link(tmp.Name(), k.path)
		} else if err == nil {
			err = os.Rename(tmp.Name(), k.path)
		}
		if err == nil {
			return nil
		}
	}
	_ = tmp.Close()
	return fmt.Errorf("keys: write keyring %s: %w", k.path, err)
}

// URI is the key URI that names this keyring (Manager's Config.KEKURI).
func (k *FileKeyring) URI() string { return KeyringScheme + k.path }

// Supported implements registry.KMSClient.
func (k *FileKeyring) Supported(uri string) bool { return uri == k.URI() }

// GetAEAD implements registry.KMSClient: the KEK, which encrypts with its
// primary key and decrypts with any of its keys.
func (k *FileKeyring) GetAEAD(uri string) (tink.AEAD, error) {
	if !k.Supported(uri) {
		return nil, fmt.Errorf("keys: keyring %s does not hold %q", k.path, strings.TrimSpace(uri))
	}
	return kekAEAD{k}, nil
}

// kekAEAD reads the keyring's current keyset on every call, so a rotation
// takes effect for wraps made after it.
type kekAEAD struct{ k *FileKeyring }

func (a kekAEAD) Encrypt(pt, ad []byte) ([]byte, error) {
	a.k.mu.RLock()
	p := a.k.a
	a.k.mu.RUnlock()
	return p.Encrypt(pt, ad)
}

func (a kekAEAD) Decrypt(ct, ad []byte) ([]byte, error) {
	a.k.mu.RLock()
	p := a.k.a
	a.k.mu.RUnlock()
	return p.Decrypt(ct, ad)
}

// KeyIDs returns the ids of the keyring's keys and which is primary.
func (k *FileKeyring) KeyIDs() (ids []uint32, primary uint32) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	info := k.h.KeysetInfo()
	for _, ki := range info.GetKeyInfo() {
		ids = append(ids, ki.GetKeyId())
	}
	return ids, info.GetPrimaryKeyId()
}

// Rotate adds a new primary key to the keyring and returns its id. Wraps
// made from now on use it; wraps made before still open until Retire.
func (k *FileKeyring) Rotate() (uint32, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	m := keyset.NewManagerFromHandle(k.h)
	id, err := m.Add(aead.AES256GCMKeyTemplate())
	if err == nil {
		err = m.SetPrimary(id)
	}
	h, herr := m.Handle()
	if err == nil {
		err = herr
	}
	if err != nil {
		return 0, fmt.Errorf("keys: rotate keyring: %w", err)
	}
	return id, k.swap(h)
}

// Retire destroys every key of the keyring but the primary. Call it only
// after Manager.Rewrap: a keyset still wrapped under a retired key can
// never be opened again.
func (k *FileKeyring) Retire() (destroyed []uint32, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	info := k.h.KeysetInfo()
	m := keyset.NewManagerFromHandle(k.h)
	for _, ki := range info.GetKeyInfo() {
		if ki.GetKeyId() == info.GetPrimaryKeyId() {
			continue
		}
		if err := m.Delete(ki.GetKeyId()); err != nil {
			return nil, fmt.Errorf("keys: retire keyring key %d: %w", ki.GetKeyId(), err)
		}
		destroyed = append(destroyed, ki.GetKeyId())
	}
	h, err := m.Handle()
	if err != nil {
		return nil, fmt.Errorf("keys: retire: %w", err)
	}
	return destroyed, k.swap(h)
}

// swap writes h and makes it current; k.mu is held.
func (k *FileKeyring) swap(h *keyset.Handle) error {
	a, err := aead.New(h)
	if err != nil {
		return fmt.Errorf("keys: keyring: %w", err)
	}
	if err := k.write(h, false); err != nil {
		return err
	}
	k.h, k.a = h, a
	return nil
}
