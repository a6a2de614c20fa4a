package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/bulkhead-dev/bulkhead/internal/pgddl"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

const pgSchemaSQL = `
CREATE SCHEMA IF NOT EXISTS bulkhead_catalog;
CREATE TABLE IF NOT EXISTS bulkhead_catalog.tenants (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	tier       TEXT NOT NULL,
	state      TEXT NOT NULL,
	mode       TEXT NOT NULL,
	shard      TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS bulkhead_catalog.api_keys (
	tenant_id    TEXT NOT NULL,
	id           TEXT NOT NULL UNIQUE,
	role         TEXT NOT NULL,
	name         TEXT NOT NULL,
	secret_hash  BYTEA NOT NULL,
	created_at   BIGINT NOT NULL,
	revoked_at   BIGINT,
	last_used_at BIGINT,
	PRIMARY KEY (tenant_id, id)
);
CREATE TABLE IF NOT EXISTS bulkhead_catalog.support_agents (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	secret_hash BYTEA NOT NULL,
	created_at  BIGINT NOT NULL,
	revoked_at  BIGINT
);
CREATE TABLE IF NOT EXISTS bulkhead_catalog.support_grants (
	tenant_id  TEXT NOT NULL,
	id         TEXT NOT NULL UNIQUE,
	agent_id   TEXT NOT NULL,
	reason     TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	revoked_at BIGINT,
	PRIMARY KEY (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS support_grants_agent ON bulkhead_catalog.support_grants (tenant_id, agent_id, expires_at);
CREATE TABLE IF NOT EXISTS bulkhead_catalog.issuers (
	tenant_id TEXT NOT NULL,
	issuer    TEXT NOT NULL,
	position  INTEGER NOT NULL,
	spec      TEXT NOT NULL,
	PRIMARY KEY (tenant_id, issuer)
);
CREATE INDEX IF NOT EXISTS issuers_by_issuer ON bulkhead_catalog.issuers (issuer);
CREATE TABLE IF NOT EXISTS bulkhead_catalog.tenant_limits (
	tenant_id TEXT PRIMARY KEY,
	spec      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bulkhead_catalog.analysts (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	secret_hash BYTEA NOT NULL,
	budget      BIGINT NOT NULL CHECK (budget >= 0),
	spent       BIGINT NOT NULL CHECK (spent >= 0 AND spent <= budget),
	created_at  BIGINT NOT NULL,
	revoked_at  BIGINT
);

CREATE TABLE IF NOT EXISTS bulkhead_catalog.tenant_retention (
	tenant_id  TEXT NOT NULL,
	collection TEXT NOT NULL,
	max_age    BIGINT NOT NULL,
	set_at     BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, collection)
);

CREATE TABLE IF NOT EXISTS bulkhead_catalog.tenant_events (
	tenant_id TEXT PRIMARY KEY,
	data      INTEGER NOT NULL,
	set_at    BIGINT NOT NULL
);
`

// OpenPostgres opens the catalog in the schema bulkhead_catalog of the
// database pool connects to, creating the schema and its tables if needed
// (pool's role must be allowed to: use the owner/migrator role, never the
// serving role). The schema gets no grants, so the serving role cannot read
// it.
//
// The Catalog LISTENs for the changes other instances make on a connection
// of its own (taken out of pool) and invalidates its cache when they
// commit; after a lost connection it serves uncached until it listens again,
// then starts from an empty cache. Close stops the listener; pool stays
// open and remains the caller's to close.
func OpenPostgres(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Catalog, error) {
	if pool == nil {
		return nil, errors.New("open catalog: nil pool")
	}
	db := stdlib.OpenDBFromPool(pool)
	// One DDL transaction, serialized by an advisory lock: instances that
	// start together would otherwise race on CREATE SCHEMA IF NOT EXISTS.
	err := pgddl.Apply(ctx, db, "bulkhead_catalog", pgSchemaSQL)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open catalog on postgres: create schema %s: %w (the pool must connect as the role that owns the database)", pgSchema, err)
	}
	c := newCatalog(db, &dialect{postgres: true}, opts)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &listener{pool: pool, cache: c.cache, log: log, done: make(chan struct{})}
	conn, err := l.connect(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open catalog on postgres: listen: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go l.run(lctx, conn)
	c.listener = l
	return c, nil
}

// listener applies the changes other instances announce to the cache.
type listener struct {
	pool   *pgxpool.Pool
	cache  *cache
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	received atomic.Int64 // notifications handled (for tests and debugging)
}

// connect takes a connection out of the pool for good (the pool opens
// another when it needs one) and LISTENs on it.
func (l *listener) connect(ctx context.Context) (*pgx.Conn, error) {
	pc, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	conn := pc.Hijack()
	if _, err := conn.Exec(ctx, `LISTEN `+notifyChannel); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// run waits for notifications until ctx is done. When the connection
// breaks it stops caching (a change could be missed while nobody listens),
// reconnects with backoff, and caches again from empty once listening.
func (l *listener) run(ctx context.Context, conn *pgx.Conn) {
	defer close(l.done)
	defer func() {
		if conn != nil {
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(cctx)
			cancel()
		}
	}()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err == nil {
			l.apply(n.Payload)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		l.cache.flush(true)
		l.log.Warn("catalog listener lost its connection; serving uncached until it reconnects", slog.String("error", err.Error()))
		conn.Close(context.Background())
		conn = nil
		for backoff := 50 * time.Millisecond; conn == nil; backoff = min(2*backoff, 2*time.Second) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			if conn, err = l.connect(ctx); err != nil {
				conn = nil
				l.log.Warn("catalog listener reconnect failed", slog.String("error", err.Error()))
			}
		}
		l.cache.flush(false)
		l.log.Info("catalog listener reconnected")
	}
}

// apply invalidates what a notification names; anything unexpected
// flushes the whole cache.
func (l *listener) apply(payload string) {
	l.received.Add(1)
	kind, v, _ := strings.Cut(payload, ":")
	switch kind {
	case "t":
		if id, err := tenant.Parse(v); err == nil {
			l.cache.invalidateTenant(id)
			return
		}
	case "k":
		l.cache.invalidateKey(v)
		return
	}
	l.cache.flush(false)
}

func (l *listener) stop() {
	l.cancel()
	<-l.done
}
