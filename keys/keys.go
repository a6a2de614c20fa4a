package keys

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/core/registry"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Config configures a Manager.
type Config struct {
	// KMS holds the key-encryption key named KEKURI: a *FileKeyring, or a
	// Tink KMS client (AWS KMS, GCP KMS, Vault, ...).
	KMS    registry.KMSClient
	KEKURI string
	// Store keeps the wrapped keysets.
	Store Store
	// CacheSize bounds how many tenants' unwrapped keys are kept in
	// memory (least recently used go first); 0 means 10,000.
	CacheSize int
	// TTL is how long unwrapped keys are used before they are read again,
	// so that a rotation or a shredding by another instance reaches this
	// one; 0 means one minute. A rotation waits this long before it
	// destroys the old keys.
	TTL time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Manager keeps each tenant's keys: it creates them, wraps them with the
// key-encryption key, caches them unwrapped (bounded), rotates and
// destroys them. It implements store.Sealer.
type Manager struct {
	kek   tink.AEAD
	store Store
	ttl   time.Duration
	now   func() time.Time

	mu    sync.Mutex // guards the cache
	lru   *list.List // of *entry, most recently used first
	byID  map[string]*list.Element
	limit int
}

type entry struct {
	id     string
	keys   *tenantKeys
	loaded time.Time
}

var _ store.Sealer = (*Manager)(nil)

// New returns a Manager for cfg.
func New(cfg Config) (*Manager, error) {
	if cfg.KMS == nil || cfg.Store == nil {
		return nil, errors.New("keys: Config.KMS and Config.Store are required")
	}
	kek, err := cfg.KMS.GetAEAD(cfg.KEKURI)
	if err != nil {
		return nil, fmt.Errorf("keys: key-encryption key %q: %w", cfg.KEKURI, err)
	}
	m := &Manager{kek: kek, store: cfg.Store, ttl: cfg.TTL, now: cfg.Now, lru: list.New(),
		byID: map[string]*list.Element{}, limit: cfg.CacheSize}
	if m.ttl <= 0 {
		m.ttl = time.Minute
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.limit <= 0 {
		m.limit = 10000
	}
	return m, nil
}

// canaryAD is the associated data of the keyring canary.
var canaryAD = []byte("bulkhead/keyring-canary/v1")

// ErrWrongKeyring: the key-encryption key does not open the keysets in
// the key store (another instance's keyring, or a lost one).
var ErrWrongKeyring = errors.New("the keyring does not open the tenant keys in the key store")

// canaryStore is a Store that keeps a keyring canary (SQLStore does).
type canaryStore interface {
	Canary(ctx context.Context) ([]byte, error)
	SetCanary(ctx context.Context, wrapped []byte) error
}

// CheckKeyring verifies that the key-encryption key is the one the key
// store's keysets were wrapped with, by a canary it wraps the first time:
// a server given another keyring than its store's fails at start, not at
// its tenants' first requests.
func (m *Manager) CheckKeyring(ctx context.Context) error {
	cs, ok := m.store.(canaryStore)
	if !ok {
		return nil
	}
	b, err := cs.Canary(ctx)
	if err != nil {
		return fmt.Errorf("keys: keyring check: %w", err)
	}
	if b != nil {
		if _, err := m.kek.Decrypt(b, canaryAD); err != nil {
			return fmt.Errorf("%w: give every instance the same keyring file (--keyring) or KMS key", ErrWrongKeyring)
		}
		return nil
	}
	return m.setCanary(ctx, cs)
}

func (m *Manager) setCanary(ctx context.Context, cs canaryStore) error {
	w, err := m.kek.Encrypt([]byte("bulkhead"), canaryAD)
	if err == nil {
		err = cs.SetCanary(ctx, w)
	}
	if err != nil {
		return fmt.Errorf("keys: keyring check: %w", err)
	}
	return nil
}

// TTL returns how long cached keys are used before they are read again.
func (m *Manager) TTL() time.Duration { return m.ttl }

// ForTenant implements store.Sealer: the tenant's keys, from the cache,
// the store, or made now for a tenant that has none.
func (m *Manager) ForTenant(ctx context.Context, id tenant.ID) (store.TenantSealer, error) {
	return m.keys(ctx, id)
}

func (m *Manager) keys(ctx context.Context, id tenant.ID) (*tenantKeys, error) {
	if k := m.cached(id.String()); k != nil {
		return k, nil
	}
	k, err := m.load(ctx, id)
	if errors.Is(err, ErrNoKeys) {
		if err = m.create(ctx, id); err == nil || errors.Is(err, ErrConflict) {
			k, err = m.load(ctx, id)
		}
	}
	if err != nil {
		return nil, err
	}
	m.put(id.String(), k)
	return k, nil
}

// Create makes the tenant's keys if it has none: fleet.Fleet calls it
// when it creates a tenant, so that a failure shows there, not at the
// first write (ForTenant makes them too, for a tenant created before).
func (m *Manager) Create(ctx context.Context, id tenant.ID) error {
	_, err := m.keys(ctx, id)
	return err
}

func (m *Manager) cached(id string) *tenantKeys {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byID[id]
	if !ok {
		return nil
	}
	e := el.Value.(*entry)
	if m.now().Sub(e.loaded) >= m.ttl {
		m.lru.Remove(el)
		delete(m.byID, id)
		return nil
	}
	m.lru.MoveToFront(el)
	return e.keys
}

func (m *Manager) put(id string, k *tenantKeys) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.byID[id]; ok {
		el.Value = &entry{id: id, keys: k, loaded: m.now()}
		m.lru.MoveToFront(el)
		return
	}
	m.byID[id] = m.lru.PushFront(&entry{id: id, keys: k, loaded: m.now()})
	for m.lru.Len() > m.limit {
		last := m.lru.Back()
		m.lru.Remove(last)
		delete(m.byID, last.Value.(*entry).id)
	}
}

// Forget drops the tenant's keys from the cache.
func (m *Manager) Forget(id tenant.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.byID[id.String()]; ok {
		m.lru.Remove(el)
		delete(m.byID, id.String())
	}
}

// Cached returns how many tenants' keys are in the cache.
func (m *Manager) Cached() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

// The associated data that binds a wrapped keyset to its tenant and kind.
func wrapAD(kind string, id tenant.ID) []byte {
	return []byte("bulkhead/keyset/v1/" + kind + "/" + id.String())
}

func (m *Manager) wrap(h *keyset.Handle, kind string, id tenant.ID) ([]byte, error) {
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), m.kek, wrapAD(kind, id)); err != nil {
		return nil, fmt.Errorf("keys: wrap %s keyset of %s: %w", kind, id, err)
	}
	return buf.Bytes(), nil
}

func (m *Manager) unwrap(b []byte, kind string, id tenant.ID) (*keyset.Handle, error) {
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(b)), m.kek, wrapAD(kind, id))
	if err != nil {
		return nil, fmt.Errorf("keys: unwrap %s keyset of %s (wrong keyring, or a keyset of another tenant): %w", kind, id, err)
	}
	return h, nil
}

// handles are a tenant's two keysets, unwrapped.
type handles struct {
	data, index *keyset.Handle
	generation  int64
}

func (m *Manager) read(ctx context.Context, id tenant.ID) (handles, error) {
	w, err := m.store.Load(ctx, id)
	if err != nil {
		return handles{}, err
	}
	d, err := m.unwrap(w.Data, "data", id)
	if err != nil {
		return handles{}, err
	}
	i, err := m.unwrap(w.Index, "index", id)
	if err != nil {
		return handles{}, err
	}
	return handles{data: d, index: i, generation: w.Generation}, nil
}

func (m *Manager) write(ctx context.Context, id tenant.ID, h handles, insert bool) error {
	d, err := m.wrap(h.data, "data", id)
	if err != nil {
		return err
	}
	i, err := m.wrap(h.index, "index", id)
	if err != nil {
		return err
	}
	if insert {
		return m.store.Insert(ctx, id, Wrapped{Data: d, Index: i, Generation: 1})
	}
	return m.store.Replace(ctx, id, Wrapped{Data: d, Index: i, Generation: h.generation + 1}, h.generation)
}

func (m *Manager) load(ctx context.Context, id tenant.ID) (*tenantKeys, error) {
	h, err := m.read(ctx, id)
	if err != nil {
		return nil, err
	}
	return newTenantKeys(m, id, h)
}

func (m *Manager) create(ctx context.Context, id tenant.ID) error {
	d, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return fmt.Errorf("keys: new data keyset: %w", err)
	}
	i, err := keyset.NewHandle(prf.HMACSHA256PRFKeyTemplate())
	if err != nil {
		return fmt.Errorf("keys: new index keyset: %w", err)
	}
	return m.write(ctx, id, handles{data: d, index: i}, true)
}

// Info describes a tenant's keys (never their material).
type Info struct {
	// DataKeys and IndexKeys are the key ids, primary first.
	DataKeys  []uint32 `json:"data_keys"`
	IndexKeys []uint32 `json:"index_keys"`
}

func keyIDs(h *keyset.Handle) []uint32 {
	info := h.KeysetInfo()
	ids := []uint32{info.GetPrimaryKeyId()}
	for _, k := range info.GetKeyInfo() {
		if k.GetKeyId() != info.GetPrimaryKeyId() {
			ids = append(ids, k.GetKeyId())
		}
	}
	return ids
}

// Info returns the ids of the tenant's keys, or an error wrapping
// ErrNoKeys.
func (m *Manager) Info(ctx context.Context, id tenant.ID) (Info, error) {
	h, err := m.read(ctx, id)
	if err != nil {
		return Info{}, err
	}
	return Info{DataKeys: keyIDs(h.data), IndexKeys: keyIDs(h.index)}, nil
}

// Names returns the key ids of i as "data:<id>" and "index:<id>".
func (i Info) Names() []string {
	var out []string
	for _, k := range i.DataKeys {
		out = append(out, "data:"+strconv.FormatUint(uint64(k), 10))
	}
	for _, k := range i.IndexKeys {
		out = append(out, "index:"+strconv.FormatUint(uint64(k), 10))
	}
	return out
}

// Destroy shreds the tenant's keys: it deletes the wrapped keysets and
// forgets the cached ones, so that every copy of the tenant's sealed
// records, wherever it is, can no longer be decrypted with this keyring.
// It returns the ids of the destroyed keys (none if it had none).
func (m *Manager) Destroy(ctx context.Context, id tenant.ID) ([]string, error) {
	info, err := m.Info(ctx, id)
	if err != nil && !errors.Is(err, ErrNoKeys) {
		return nil, err
	}
	m.Forget(id)
	if _, err := m.store.Delete(ctx, id); err != nil {
		return nil, err
	}
	m.Forget(id)
	return info.Names(), nil
}

// Rotate gives the tenant a new primary data key and a new primary index
// key; the old keys keep opening what they sealed. Re-seal the tenant's
// records (store.Tx.Reseal), then call Retire.
func (m *Manager) Rotate(ctx context.Context, id tenant.ID) (Info, error) {
	if _, err := m.keys(ctx, id); err != nil { // a tenant without keys gets its first
		return Info{}, err
	}
	h, err := m.read(ctx, id)
	if err != nil {
		return Info{}, err
	}
	if h.data, err = addPrimary(h.data, aead.AES256GCMKeyTemplate()); err != nil {
		return Info{}, err
	}
	if h.index, err = addPrimary(h.index, prf.HMACSHA256PRFKeyTemplate()); err != nil {
		return Info{}, err
	}
	if err := m.write(ctx, id, h, false); err != nil {
		return Info{}, err
	}
	m.Forget(id)
	return Info{DataKeys: keyIDs(h.data), IndexKeys: keyIDs(h.index)}, nil
}

func addPrimary(h *keyset.Handle, tpl *tinkpb.KeyTemplate) (*keyset.Handle, error) {
	tm := keyset.NewManagerFromHandle(h)
	kid, err := tm.Add(tpl)
	if err == nil {
		err = tm.SetPrimary(kid)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: rotate: %w", err)
	}
	return tm.Handle()
}

// dropOld deletes every key of h but the primary, and returns their ids.
func dropOld(h *keyset.Handle) (*keyset.Handle, []uint32, error) {
	info := h.KeysetInfo()
	tm := keyset.NewManagerFromHandle(h)
	var gone []uint32
	for _, k := range info.GetKeyInfo() {
		if k.GetKeyId() == info.GetPrimaryKeyId() {
			continue
		}
		if err := tm.Delete(k.GetKeyId()); err != nil {
			return nil, nil, fmt.Errorf("keys: retire key %d: %w", k.GetKeyId(), err)
		}
		gone = append(gone, k.GetKeyId())
	}
	nh, err := tm.Handle()
	return nh, gone, err
}

// Retire destroys every key of the tenant but the primary ones, after a
// rotation whose re-sealing is done: what they alone sealed no longer
// opens. It returns the destroyed keys' names.
func (m *Manager) Retire(ctx context.Context, id tenant.ID) ([]string, error) {
	h, err := m.read(ctx, id)
	if err != nil {
		return nil, err
	}
	var gone Info
	if h.data, gone.DataKeys, err = dropOld(h.data); err != nil {
		return nil, err
	}
	if h.index, gone.IndexKeys, err = dropOld(h.index); err != nil {
		return nil, err
	}
	if len(gone.DataKeys)+len(gone.IndexKeys) == 0 {
		return nil, nil
	}
	if err := m.write(ctx, id, h, false); err != nil {
		return nil, err
	}
	m.Forget(id)
	return gone.Names(), nil
}

// Rewrap wraps every tenant's keysets again with the key-encryption key's
// current primary key, without touching records: after a keyring (or KMS
// key) rotation, so that the old key-encryption key can be retired.
// progress, if not nil, is called after each tenant with the count so far.
func (m *Manager) Rewrap(ctx context.Context, progress func(done int)) (int, error) {
	if cs, ok := m.store.(canaryStore); ok {
		if err := m.setCanary(ctx, cs); err != nil {
			return 0, err
		}
	}
	done, after := 0, ""
	for {
		ids, err := m.store.Tenants(ctx, after, 500)
		if err != nil {
			return done, err
		}
		if len(ids) == 0 {
			return done, nil
		}
		for _, id := range ids {
			for attempt := 0; ; attempt++ {
				h, err := m.read(ctx, id)
				if errors.Is(err, ErrNoKeys) {
					break // shredded meanwhile
				}
				if err == nil {
					err = m.write(ctx, id, h, false)
				}
				if err == nil {
					break
				}
				if !errors.Is(err, ErrConflict) || attempt == 3 {
					return done, err
				}
			}
			done++
			if progress != nil {
				progress(done)
			}
			after = id.String()
		}
	}
}
