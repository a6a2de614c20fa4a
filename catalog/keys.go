package catalog

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Token format: bk_<key_id>_<secret>. The key id is 20 characters of
// lowercase base32 (100 random bits); the secret is 32 random bytes
// (256 bits) in unpadded base64url. Only SHA-256(secret) is stored.
const (
	tokenPrefix = "bk_"
	keyIDLen    = 20
	secretLen   = 43
)

var keyIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// lastUsedEvery is how stale last_used_at may get before a use updates it.
const lastUsedEvery = time.Minute

func newKeyID() string {
	var b [keyIDLen * 5 / 8]byte
	_, _ = rand.Read(b[:])
	return keyIDEncoding.EncodeToString(b[:])
}

func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseToken splits a tenant API token into key id and secret; ok is false
// if it does not have the token's shape.
func ParseToken(token string) (keyID, secret string, ok bool) {
	return parsePrefixedToken(token, tokenPrefix)
}

// parsePrefixedToken splits prefix<id>_<secret> (a tenant key's or a
// support agent's token) into id and secret; ok is false if token does not
// have exactly that shape.
func parsePrefixedToken(token, prefix string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, prefix)
	if !found || len(rest) != keyIDLen+1+secretLen || rest[keyIDLen] != '_' {
		return "", "", false
	}
	id, secret = rest[:keyIDLen], rest[keyIDLen+1:]
	if !validKeyID(id) {
		return "", "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", "", false
	}
	return id, secret, true
}

func validKeyID(id string) bool {
	if len(id) != keyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// CreateKey issues a key for an active or suspended tenant. The token
// bk_<key_id>_<secret> is returned once and never stored.
func (c *Catalog) CreateKey(ctx context.Context, id tenant.ID, role Role, name string) (Key, string, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return Key{}, "", err
	}
	if name == "" {
		name = string(role)
	}
	if err := ValidName(name); err != nil {
		return Key{}, "", err
	}
	t, err := c.Tenant(ctx, id)
	if err != nil {
		return Key{}, "", err
	}
	if t.State != Active && t.State != Suspended {
		return Key{}, "", fmt.Errorf("%w: tenant %s is %s", ErrInvalidState, id, t.State)
	}
	k := Key{ID: newKeyID(), Tenant: id, Role: role, Name: name, CreatedAt: c.now().UTC().Truncate(time.Microsecond)}
	secret := newSecret()
	hash := sha256.Sum256([]byte(secret))
	// The tenant must still be there (and not being offboarded) when the key lands.
	res, err := c.execNotify(ctx, keyPayload(k.ID), `INSERT INTO api_keys (tenant_id, id, role, name, secret_hash, created_at)
		SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM tenants WHERE id = ? AND state IN (?, ?))`,
		id.String(), k.ID, string(role), name, hash[:], micros(k.CreatedAt), id.String(), string(Active), string(Suspended))
	if err != nil {
		return Key{}, "", fmt.Errorf("create key: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Key{}, "", fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return k, tokenPrefix + k.ID + "_" + secret, nil
}

// RevokeKey revokes the tenant's key, effective on the next request. It
// returns ErrKeyNotFound if the key does not exist or belongs to another
// tenant. Revoking a revoked key is a no-op.
func (c *Catalog) RevokeKey(ctx context.Context, id tenant.ID, keyID string) error {
	if !validKeyID(keyID) {
		return fmt.Errorf("%w: %q", ErrKeyNotFound, clipName(keyID))
	}
	res, err := c.execNotify(ctx, keyPayload(keyID), `UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE tenant_id = ? AND id = ?`,
		micros(c.now()), id.String(), keyID)
	if err != nil {
		return fmt.Errorf("revoke key: %w", err)
	}
	c.cache.invalidateKey(keyID)
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("%w: %s", ErrKeyNotFound, keyID)
	}
	return nil
}

func clipName(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// ListKeys returns the tenant's keys, newest first. Secrets are never returned.
func (c *Catalog) ListKeys(ctx context.Context, id tenant.ID) ([]Key, error) {
	rows, err := c.query(ctx, c.db, `SELECT id, role, name, created_at, revoked_at, last_used_at
		FROM api_keys WHERE tenant_id = ? ORDER BY created_at DESC, id`, id.String())
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	out := []Key{}
	for rows.Next() {
		var (
			k                 Key
			role              string
			created           int64
			revoked, lastUsed sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &role, &k.Name, &created, &revoked, &lastUsed); err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		k.Tenant, k.Role, k.CreatedAt = id, Role(role), fromMicros(created)
		if revoked.Valid {
			t := fromMicros(revoked.Int64)
			k.RevokedAt = &t
		}
		if lastUsed.Valid {
			t := fromMicros(lastUsed.Int64)
			k.LastUsedAt = &t
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// Authenticate resolves a tenant API token. A malformed, unknown or revoked
// token, a wrong secret, a key issued before the tenant's current
// incarnation (see Incarnation), or a tenant that is gone or being offboarded gives
// ErrUnauthenticated; a suspended tenant gives ErrSuspended. The secret is
// compared in constant time against its stored SHA-256 hash.
func (c *Catalog) Authenticate(ctx context.Context, token string) (Principal, error) {
	keyID, secret, ok := ParseToken(token)
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	k, err := c.keyEntry(ctx, keyID)
	if err != nil {
		return Principal{}, err
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], k.hash[:]) != 1 || !k.found || k.revoked {
		return Principal{}, ErrUnauthenticated
	}
	t, err := c.tenantEntry(ctx, k.tenant)
	if err != nil {
		return Principal{}, err
	}
	switch {
	case !t.found || t.state == Deleting || t.state == Provisioning:
		return Principal{}, ErrUnauthenticated
	case k.created.Before(t.created):
		// Issued to an earlier incarnation of the id: offboarding removes
		// such keys, and one that survived it is refused all the same.
		return Principal{}, ErrUnauthenticated
	case t.state == Suspended:
		return Principal{}, ErrSuspended
	}
	if c.now().Sub(k.lastUsed) > lastUsedEvery {
		c.touch(keyID)
	}
	return Principal{Tenant: k.tenant, KeyID: keyID, Role: k.role}, nil
}

// touch records a key's use in the background, at most once per
// lastUsedEvery per key (the cache entry is updated first). It is the one
// write not announced to other instances: it changes nothing they enforce.
func (c *Catalog) touch(keyID string) {
	now := c.now()
	c.cache.mu.Lock()
	if e, ok := c.cache.keys[keyID]; ok {
		if now.Sub(e.v.lastUsed) <= lastUsedEvery {
			c.cache.mu.Unlock()
			return
		}
		e.v.lastUsed = now
		c.cache.keys[keyID] = e
	}
	c.cache.mu.Unlock()
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.exec(ctx, c.db, `UPDATE api_keys SET last_used_at = ? WHERE id = ?`, micros(now), keyID)
	}()
}

func (c *Catalog) keyEntry(ctx context.Context, keyID string) (keyEntry, error) {
	if e, ok := c.cache.key(keyID); ok {
		return e, nil
	}
	gen := c.cache.generation()
	var (
		tid, role string
		hash      []byte
		revoked   sql.NullInt64
		lastUsed  sql.NullInt64
		created   int64
	)
	err := c.queryRow(ctx, c.db, `SELECT tenant_id, role, secret_hash, revoked_at, last_used_at, created_at FROM api_keys WHERE id = ?`, keyID).
		Scan(&tid, &role, &hash, &revoked, &lastUsed, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return keyEntry{}, nil // unknown keys are not cached: ids are random, caching them helps nobody
	}
	if err != nil {
		return keyEntry{}, fmt.Errorf("read key: %w", err)
	}
	id, err := tenant.Parse(tid)
	if err != nil || len(hash) != sha256.Size {
		return keyEntry{}, fmt.Errorf("catalog holds a corrupt key %s", keyID)
	}
	e := keyEntry{found: true, tenant: id, role: Role(role), revoked: revoked.Valid, created: fromMicros(created)}
	copy(e.hash[:], hash)
	if lastUsed.Valid {
		e.lastUsed = fromMicros(lastUsed.Int64)
	}
	c.cache.putKey(gen, keyID, e)
	return e, nil
}
