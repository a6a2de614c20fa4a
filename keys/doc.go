// Package keys gives every tenant its own encryption keys: envelope
// encryption of record data with Tink, a keyed index for equality filters,
// rotation, and crypto-shredding.
//
// Each tenant has two Tink keysets: an AEAD keyset (AES-256-GCM) that
// encrypts its record data, bound to tenant, collection and record id as
// associated data, and a PRF keyset (HMAC-SHA256) that makes the index
// tokens equality filters are answered from. Both are stored wrapped
// (encrypted) by a key-encryption key from a keyring (FileKeyring, a file
// outside the databases, or any Tink KMS client), bound to their tenant, in
// a Store (SQLStore: a table in SQLite or PostgreSQL).
//
// A Manager implements store.Sealer: give it to store.Config.Sealer and a
// Router encrypts every record it writes and decrypts every record it reads.
// Destroy shreds a tenant: its keysets are deleted, and every copy of its
// sealed records (a backup, a WAL segment, a copied database file) can no
// longer be decrypted. Rotate, store.Tx.Reseal and Retire rotate a
// tenant's keys; FileKeyring.Rotate, Manager.Rewrap and FileKeyring.Retire
// rotate the key-encryption key.
//
// What the index reveals: a token is a keyed hash of collection, field and
// value under the tenant's own key, so whoever reads the database learns,
// within one tenant and collection, which records share a value in some
// field (equality), and how many indexed fields a record has — not the
// field, not the value, and nothing across tenants or collections.
package keys
